"""Authenticator apps (RFC 6238 TOTP): enrol a sealed seed, confirm it, check a code once."""

from __future__ import annotations

from dataclasses import dataclass

import segno
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from rampart.identity.mfa.db import TotpRow
from rampart.identity.mfa.domain import (
    TOTP_LATE_STEPS,
    FactorAlreadyEnrolledError,
    FactorKind,
    FactorNotEnrolledError,
    InvalidFactorError,
    match_totp,
    new_totp_seed,
    provisioning_uri,
    seed_base32,
)
from rampart.identity.mfa.factors import FactorCheck, FactorEvents
from rampart.identity.mfa.ports import MfaSecrets
from rampart.kernel.clock import Clock
from rampart.kernel.ids import new_id
from rampart.platform.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    uri: str
    secret: str
    qr_svg: str


class TotpFactor:
    def __init__(
        self,
        clock: Clock,
        secrets_port: MfaSecrets,
        events: FactorEvents,
        *,
        issuer: str,
        late_steps: int = TOTP_LATE_STEPS,
    ) -> None:
        self._clock = clock
        self._late_steps = late_steps
        self._secrets = secrets_port
        self._events = events
        self._issuer = issuer

    def begin(self, uow: UnitOfWork, user_id: str, account: str) -> TotpEnrolment:
        """A fresh seed for an authenticator app; active only after `confirm`."""
        session = uow.session
        row = session.scalar(select(TotpRow).where(TotpRow.user_id == user_id))
        if row is not None and row.confirmed_at is not None:
            raise FactorAlreadyEnrolledError("Remove the current authenticator app first.")
        seed = new_totp_seed()
        row_id = row.id if row is not None else new_id()
        sealed = self._secrets.seal(
            session, seed, table="mfa_totp", column="seed_sealed", row_id=row_id, user_id=user_id
        )
        if row is None:
            row = TotpRow(
                id=row_id, user_id=user_id, seed_sealed=sealed, created_at=self._clock.now()
            )
            session.add(row)
        row.seed_sealed = sealed
        row.created_at = self._clock.now()
        row.last_used_step = None
        session.flush()
        uri = provisioning_uri(seed, account=account, issuer=self._issuer)
        qr = segno.make(uri, error="m")
        svg = qr.svg_inline(scale=4, dark="#111", light="#fff", omitsize=False)
        return TotpEnrolment(uri=uri, secret=seed_base32(seed), qr_svg=svg)

    def confirm(self, uow: UnitOfWork, user_id: str, code: str) -> FactorCheck:
        """Activate the pending seed with a first valid code (which is then spent)."""
        session = uow.session
        row = session.scalar(select(TotpRow).where(TotpRow.user_id == user_id))
        if row is None or row.confirmed_at is not None:
            raise FactorNotEnrolledError("Start the authenticator-app set-up again.")
        seed = self._open_seed(session, row)
        step = match_totp(
            seed,
            code,
            self._clock.now().timestamp(),
            last_used_step=None,
            late_steps=self._late_steps,
        )
        if step is None:
            return FactorCheck(
                ok=False,
                kind=FactorKind.TOTP,
                error=InvalidFactorError(
                    "The code did not match; check the app's clock and try the next code."
                ),
            )
        now = self._clock.now()
        row.confirmed_at = now
        row.last_used_step = step
        row.last_used_at = now
        session.flush()
        self._events.enrolled(uow, user_id, FactorKind.TOTP, {})
        return FactorCheck(ok=True, kind=FactorKind.TOTP)

    def verify(self, uow: UnitOfWork, user_id: str, code: str) -> None:
        """Accept `code` once; raises `InvalidFactorError` for any other outcome."""
        session = uow.session
        row = session.scalar(
            select(TotpRow).where(TotpRow.user_id == user_id, TotpRow.confirmed_at.is_not(None))
        )
        if row is None:
            raise InvalidFactorError
        seed = self._open_seed(session, row)
        now = self._clock.now()
        step = match_totp(
            seed,
            code,
            now.timestamp(),
            last_used_step=row.last_used_step,
            late_steps=self._late_steps,
        )
        if step is None:
            raise InvalidFactorError
        # Compare-and-set in the database: of two requests (in any processes) presenting the
        # same code, exactly one moves the step forward; the other finds the row changed.
        claimed = session.execute(
            update(TotpRow)
            .where(
                TotpRow.id == row.id,
                (TotpRow.last_used_step.is_(None)) | (TotpRow.last_used_step < step),
            )
            .values(last_used_step=step, last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidFactorError
        session.expire(row)

    def remove(self, uow: UnitOfWork, user_id: str) -> None:
        deleted = uow.session.execute(delete(TotpRow).where(TotpRow.user_id == user_id))
        if not deleted.rowcount:  # type: ignore[attr-defined]
            raise FactorNotEnrolledError
        self._events.removed(uow, user_id, FactorKind.TOTP, {})

    def _open_seed(self, session: Session, row: TotpRow) -> bytes:
        return self._secrets.open(
            session,
            row.seed_sealed,
            table="mfa_totp",
            column="seed_sealed",
            row_id=row.id,
            user_id=row.user_id,
        )

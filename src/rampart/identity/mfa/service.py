"""Second-factor use cases: enrolment, verification, step-up policy and support-assisted reset.

Every method takes a unit of work (or, for reads, a session) and never commits. Verification is
special: a failed attempt must still be counted, so `verify()` returns a `FactorCheck` instead of
raising, and its caller commits *then* raises (`FactorCheck.raise_for_failure()`); see
`rampart.identity.mfa.api.commit_check`.
"""

from __future__ import annotations

import base64
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import segno
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from rampart.access.domain import (
    MfaEnrolmentRequiredError,
    PermissionDeniedError,
    Principal,
    check_staff_step_up,
    check_step_up,
)
from rampart.config import MfaSettings
from rampart.identity.mfa import webauthn_rp as rp_mod
from rampart.identity.mfa.backup_codes import code_digest_matches, seal_code_digest
from rampart.identity.mfa.db import (
    BackupCodeRow,
    ChallengeRow,
    FactorResetRow,
    OtpChannelRow,
    TotpRow,
    WebAuthnCredentialRow,
)
from rampart.identity.mfa.domain import (
    BACKUP_CODE_COUNT,
    COOLING_BLOCKED,
    MAX_AUTHENTICATORS,
    MFA_MANDATORY,
    OTP_MAX_ATTEMPTS,
    OTP_MAX_PER_HOUR,
    OTP_RESEND_INTERVAL,
    OTP_TTL,
    STAFF_ACTIONS,
    ChallengeExhaustedError,
    CodeSendThrottledError,
    CoolingPeriodError,
    FactorAlreadyEnrolledError,
    FactorKind,
    FactorNotEnrolledError,
    FactorSummary,
    InvalidFactorError,
    SensitiveAction,
    TooManyAuthenticatorsError,
    clean_authenticator_name,
    clean_numeric_code,
    clean_phone_number,
    cooling_until,
    enrol_purpose,
    mask_email,
    mask_phone,
    match_totp,
    new_backup_codes,
    new_numeric_code,
    new_totp_seed,
    normalise_backup_code,
    provisioning_uri,
    seed_base32,
    totp_step,
    valid_purpose,
)
from rampart.identity.mfa.recovery import (
    ResetRequest,
    cooling_ends,
    hold_after_email_reset,
    open_reset_request,
    take_reset_request,
)
from rampart.identity.mfa.webauthn_rp import RelyingParty
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import RampartError, ValidationError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import is_id, new_id
from rampart.kernel.secret import Secret
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.vault import Purpose, SealContext, UnreadableError, VaultService

log = get_logger(__name__)

#: WebAuthn challenges live a little longer than the browser prompt (120 s).
WEBAUTHN_CHALLENGE_TTL_SECONDS = 180


# --- ports -----------------------------------------------------------------------------------
class MfaSecrets:
    """The vault as MFA uses it: seeds sealed under MFA-secret keys, phone numbers as personal
    data, both under the user's own key (so shredding a user destroys them), and a keyed hash
    (the vault's blind index) for low-entropy codes."""

    _PURPOSE_BY_COLUMN = {
        ("mfa_totp", "seed_sealed"): Purpose.MFA_SECRET,
        ("mfa_otp_channel", "destination_sealed"): Purpose.PERSONAL_DATA,
    }

    def __init__(self, vault: VaultService) -> None:
        self._vault = vault

    def seal(
        self,
        session: Session,
        plaintext: bytes,
        *,
        table: str,
        column: str,
        row_id: str,
        user_id: str,
    ) -> bytes:
        return self._vault.seal(
            session,
            self._PURPOSE_BY_COLUMN[(table, column)],
            plaintext,
            SealContext(table=table, column=column, row_id=row_id),
            user_id=user_id,
        )

    def open(
        self, session: Session, sealed: bytes, *, table: str, column: str, row_id: str, user_id: str
    ) -> bytes:
        try:
            return self._vault.open(
                session,
                self._PURPOSE_BY_COLUMN[(table, column)],
                sealed,
                SealContext(table=table, column=column, row_id=row_id),
                user_id=user_id,
            ).reveal()
        except UnreadableError as exc:
            # A factor whose secret is gone (its owner shredded, the row altered) proves
            # nothing: the same refusal as a wrong code, never a server error.
            log.warning("mfa.secret.unreadable", table=table, error=type(exc).__name__)
            raise InvalidFactorError from None

    def digest(self, session: Session, kind: str, value: str) -> str:
        return self._vault.blind_index(session, kind, value)


class Notifier(Protocol):
    """Sends a user a security notice or a one-time code through the outbox (identity's)."""

    def security_notice(
        self, uow: UnitOfWork, user_id: str, event: str, details: dict[str, Any]
    ) -> None: ...

    def one_time_code(
        self,
        uow: UnitOfWork,
        user_id: str,
        channel: str,
        destination: str,
        code: Secret[str],
        purpose: str,
        expires_minutes: int,
    ) -> None: ...


# --- results ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TotpEnrolment:
    uri: str
    secret: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class Authenticator:
    id: str
    name: str
    device_type: str
    backed_up: bool
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class WebAuthnCeremony:
    challenge_id: str
    options: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FactorResponse:
    """A user's answer to a second-factor challenge."""

    kind: FactorKind
    code: str | None = None
    challenge_id: str | None = None
    credential: dict[str, Any] | None = None


@dataclass(slots=True)
class FactorCheck:
    """The outcome of a verification; the caller commits first so failures are counted."""

    ok: bool
    kind: FactorKind
    error: RampartError | None = None
    #: Backup codes left after using one (for the "n remaining" warning).
    backup_codes_remaining: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def raise_for_failure(self) -> None:
        if not self.ok:
            raise self.error or InvalidFactorError()


@dataclass(frozen=True, slots=True)
class ResetRecord:
    id: str
    user_id: str
    created_at: datetime
    cooling_until: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_in_cooling_period(session: Session, user_id: str, now: datetime) -> bool:
    """True during the 24 hours after a support-assisted factor reset of the user, or after a
    password reset by email when that mailbox was its only second factor
    (`rampart.identity.mfa.recovery`).

    Withdrawals, new API keys and new orders are refused meanwhile (`MfaService.require_step_up`
    for the actions in `COOLING_BLOCKED`, the risk gate for orders; other domains may call this
    directly).
    """
    ends = cooling_ends(session, user_id)
    return ends is not None and now < ends


class MfaService:
    def __init__(
        self,
        settings: MfaSettings,
        clock: Clock,
        secrets_port: MfaSecrets,
        notifier: Notifier,
        relying_party: RelyingParty,
        *,
        issuer: str = "Rampart",
        email_of: Callable[[Session, str], str | None] | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._secrets = secrets_port
        self._notifier = notifier
        self.relying_party = relying_party
        self._issuer = issuer
        self._email_of = email_of
        #: Called with (uow, user_id) in the transaction of a support-assisted factor reset
        #: (identity ends a staff member's sessions there: they carry a key proof now void).
        self.reset_listeners: list[Callable[[UnitOfWork, str], object]] = []
        #: Called with (uow, user_id) whenever a recovery hold starts (a factor reset or an
        #: email-only password reset): the risk gate drops its cached view of the trader.
        self.hold_listeners: list[Callable[[UnitOfWork, str], object]] = []

    # ==== reads ==================================================================================
    def summary(self, session: Session, user_id: str) -> FactorSummary:
        totp = session.scalar(
            select(func.count())
            .select_from(TotpRow)
            .where(TotpRow.user_id == user_id, TotpRow.confirmed_at.is_not(None))
        )
        keys = session.scalar(
            select(func.count())
            .select_from(WebAuthnCredentialRow)
            .where(WebAuthnCredentialRow.user_id == user_id)
        )
        channels = session.execute(
            select(OtpChannelRow.channel, OtpChannelRow.destination_hint).where(
                OtpChannelRow.user_id == user_id, OtpChannelRow.confirmed_at.is_not(None)
            )
        ).all()
        by_channel = dict(channels)
        return FactorSummary(
            totp=bool(totp),
            webauthn=int(keys or 0),
            email=FactorKind.EMAIL.value in by_channel,
            sms=(by_channel.get(FactorKind.SMS.value) or "")
            if FactorKind.SMS.value in by_channel
            else None,
            backup_codes_remaining=self.backup_codes_remaining(session, user_id),
        )

    def required_factors(self, session: Session, user_id: str) -> list[str]:
        """The factors a sign-in may be completed with (identity's `SecondFactors` seam); empty
        when the user has none, so the password alone completes the sign-in."""
        summary = self.summary(session, user_id)
        return summary.kinds() if summary.enrolled else []

    def has_mfa(self, session: Session, user_id: str) -> bool:
        """Whether a sign-in of this user must pass a second factor."""
        return self.summary(session, user_id).enrolled

    def backup_codes_remaining(self, session: Session, user_id: str) -> int:
        return int(
            session.scalar(
                select(func.count())
                .select_from(BackupCodeRow)
                .where(BackupCodeRow.user_id == user_id, BackupCodeRow.used_at.is_(None))
            )
            or 0
        )

    def authenticators(self, session: Session, user_id: str) -> list[Authenticator]:
        rows = session.scalars(
            select(WebAuthnCredentialRow)
            .where(WebAuthnCredentialRow.user_id == user_id)
            .order_by(WebAuthnCredentialRow.created_at, WebAuthnCredentialRow.id)
            .limit(MAX_AUTHENTICATORS)
        ).all()
        return [
            Authenticator(
                id=r.id,
                name=r.name,
                device_type=r.device_type,
                backed_up=r.backed_up,
                created_at=utc(r.created_at),
                last_used_at=utc(r.last_used_at) if r.last_used_at else None,
            )
            for r in rows
        ]

    # ==== policy =================================================================================
    def require_step_up(
        self, session: Session, principal: Principal, action: SensitiveAction | str
    ) -> None:
        """The one check a sensitive action calls before doing anything.

        Refuses with 401 `step-up-required` unless a second factor was passed within
        `mfa.step_up_minutes`, with 403 `mfa-enrolment-required` when the user has no factor and
        the platform requires one, and with 403 `mfa-cooling-period` for withdrawals and new API
        keys during the 24 hours after a support-assisted reset. Staff actions (`STAFF_ACTIONS`)
        need a WebAuthn factor within `mfa.staff_step_up_minutes`.
        """
        if principal.user_id is None:
            raise PermissionDeniedError("Only a person can do this.")
        now = self._clock.now()
        action = SensitiveAction(action)
        if action in STAFF_ACTIONS:
            # A staff action is confirmed with a security key, never a code that a fake page
            # could have relayed (and never by an API key).
            check_staff_step_up(
                principal, now.timestamp(), step_up_minutes=self._settings.staff_step_up_minutes
            )
            return
        if action in COOLING_BLOCKED and is_in_cooling_period(session, principal.user_id, now):
            raise CoolingPeriodError(
                "Your account was recovered (second factors reset, or the password reset by "
                "email alone) less than 24 hours ago; this is blocked until the cooling period "
                "ends."
            )
        # An API key acts without a person present: it can never step up.
        if principal.method == "apikey":
            raise PermissionDeniedError("API keys cannot perform this action.")
        check_step_up(
            principal,
            now.timestamp(),
            step_up_minutes=self._settings.step_up_minutes,
            # Money and credentials demand a factor; changing one's own password, email or
            # factors does not (a user without any has nothing to step up with).
            mfa_required=self._settings.required_for_trading and action in MFA_MANDATORY,
            mfa_enrolled=self.has_mfa(session, principal.user_id),
        )

    def in_cooling_period(self, session: Session, user_id: str) -> bool:
        """Whether the user is in a recovery cooling period now (the risk gate refuses orders)."""
        return is_in_cooling_period(session, user_id, self._clock.now())

    def after_password_reset(self, uow: UnitOfWork, user_id: str) -> None:
        """Identity calls this in the transaction of a password reset by email: when that
        mailbox was the account's only second factor, the account goes on a 24-hour hold and
        its owner is told (`rampart.identity.mfa.recovery`)."""
        ends = hold_after_email_reset(
            uow, user_id, self.summary(uow.session, user_id), self._clock.now()
        )
        if ends is not None:
            self._notifier.security_notice(
                uow, user_id, "mfa.recovery_hold", {"cooling_until": ends.isoformat()}
            )
            for listener in self.hold_listeners:
                listener(uow, user_id)

    def require_mfa_enrolled(self, session: Session, principal: Principal) -> None:
        """Trading, withdrawals and API keys need a second factor set up (when configured)."""
        if not self._settings.required_for_trading or principal.user_id is None:
            return
        if not self.has_mfa(session, principal.user_id):
            raise MfaEnrolmentRequiredError(
                "Set up a second factor in your security settings before trading."
            )

    # ==== verification ===========================================================================
    def available_kinds(self, session: Session, user_id: str) -> list[str]:
        return self.summary(session, user_id).kinds()

    def verify(
        self, uow: UnitOfWork, user_id: str, purpose: str, response: FactorResponse
    ) -> FactorCheck:
        """Check one second-factor response for `purpose`. Never raises for a wrong answer:
        the attempt is recorded in `uow` and the caller must commit before raising."""
        if not valid_purpose(purpose):
            raise ValidationError("Unknown purpose.")
        try:
            details: dict[str, Any] = {}
            remaining: int | None = None
            if response.kind is FactorKind.TOTP:
                self._verify_totp(uow, user_id, response.code or "")
            elif response.kind is FactorKind.BACKUP_CODE:
                remaining = self._use_backup_code(uow, user_id, response.code or "")
                details["remaining"] = remaining
            elif response.kind in (FactorKind.EMAIL, FactorKind.SMS):
                self._require_channel(uow.session, user_id, response.kind)
                self._check_code(uow, user_id, response.kind, purpose, response.code or "")
            elif response.kind is FactorKind.WEBAUTHN:
                details["authenticator"] = self._verify_assertion(
                    uow, user_id, purpose, response.challenge_id or "", response.credential or {}
                )
            else:
                raise InvalidFactorError
        except (InvalidFactorError, ChallengeExhaustedError, FactorNotEnrolledError) as exc:
            uow.audit(
                AuditEvent(
                    action="mfa.verify",
                    outcome="failure",
                    subject=f"user:{user_id}",
                    details={
                        "kind": response.kind.value,
                        "purpose": purpose.split(":")[0],
                        "error": exc.code,
                    },
                )
            )
            return FactorCheck(ok=False, kind=response.kind, error=exc)
        uow.audit(
            AuditEvent(
                action="mfa.verify",
                subject=f"user:{user_id}",
                details={"kind": response.kind.value, "purpose": purpose.split(":")[0], **details},
            )
        )
        if response.kind is FactorKind.BACKUP_CODE:
            self._notifier.security_notice(
                uow, user_id, "mfa.backup_code_used", {"remaining": remaining}
            )
        return FactorCheck(
            ok=True, kind=response.kind, backup_codes_remaining=remaining, details=details
        )

    # ==== TOTP ===================================================================================
    def begin_totp(self, uow: UnitOfWork, user_id: str, account: str) -> TotpEnrolment:
        """A fresh seed for an authenticator app; active only after `confirm_totp`."""
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

    def confirm_totp(self, uow: UnitOfWork, user_id: str, code: str) -> FactorCheck:
        """Activate the pending seed with a first valid code (which is then spent)."""
        session = uow.session
        row = session.scalar(select(TotpRow).where(TotpRow.user_id == user_id))
        if row is None or row.confirmed_at is not None:
            raise FactorNotEnrolledError("Start the authenticator-app set-up again.")
        seed = self._open_seed(session, row)
        step = match_totp(seed, code, self._clock.now().timestamp(), last_used_step=None)
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
        self._enrolled(uow, user_id, FactorKind.TOTP, {})
        return FactorCheck(ok=True, kind=FactorKind.TOTP)

    def _open_seed(self, session: Session, row: TotpRow) -> bytes:
        return self._secrets.open(
            session,
            row.seed_sealed,
            table="mfa_totp",
            column="seed_sealed",
            row_id=row.id,
            user_id=row.user_id,
        )

    def _verify_totp(self, uow: UnitOfWork, user_id: str, code: str) -> None:
        session = uow.session
        row = session.scalar(
            select(TotpRow).where(TotpRow.user_id == user_id, TotpRow.confirmed_at.is_not(None))
        )
        if row is None:
            raise InvalidFactorError
        seed = self._open_seed(session, row)
        now = self._clock.now()
        step = match_totp(seed, code, now.timestamp(), last_used_step=row.last_used_step)
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

    def remove_totp(self, uow: UnitOfWork, user_id: str) -> None:
        deleted = uow.session.execute(delete(TotpRow).where(TotpRow.user_id == user_id))
        if not deleted.rowcount:  # type: ignore[attr-defined]
            raise FactorNotEnrolledError
        self._removed(uow, user_id, FactorKind.TOTP, {})

    # ==== backup codes ===========================================================================
    def regenerate_backup_codes(self, uow: UnitOfWork, user_id: str) -> list[Secret[str]]:
        """Ten new codes, shown once; every older code stops working in the same transaction."""
        session = uow.session
        session.execute(delete(BackupCodeRow).where(BackupCodeRow.user_id == user_id))
        codes = new_backup_codes(BACKUP_CODE_COUNT)
        now = self._clock.now()
        for code in codes:
            normal = normalise_backup_code(code)
            assert normal is not None
            session.add(
                BackupCodeRow(
                    id=new_id(),
                    user_id=user_id,
                    code_digest=seal_code_digest(
                        self._code_digest(session, "backup", user_id, normal)
                    ),
                    created_at=now,
                )
            )
        session.flush()
        uow.audit(
            AuditEvent(
                action="mfa.backup_codes.generated",
                subject=f"user:{user_id}",
                details={"count": len(codes)},
            )
        )
        self._notifier.security_notice(
            uow, user_id, "mfa.backup_codes_generated", {"count": len(codes)}
        )
        return [Secret(c) for c in codes]

    def _code_digest(self, session: Session, kind: str, user_id: str, code: str) -> str:
        return self._secrets.digest(session, f"mfa-{kind}", f"{user_id}\x00{code}")

    def _use_backup_code(self, uow: UnitOfWork, user_id: str, code: str) -> int:
        session = uow.session
        normal = normalise_backup_code(code)
        if normal is None:
            raise InvalidFactorError
        digest = self._code_digest(session, "backup", user_id, normal)
        rows = session.scalars(
            select(BackupCodeRow)
            .where(BackupCodeRow.user_id == user_id, BackupCodeRow.used_at.is_(None))
            .limit(BACKUP_CODE_COUNT * 2)
        ).all()
        match: BackupCodeRow | None = None
        for row in rows:
            # Every unused code is checked, whether or not an earlier one matched: the time
            # taken says nothing about which code, or whether any, matched.
            if code_digest_matches(row.code_digest, digest) and match is None:
                match = row
        if match is None:
            raise InvalidFactorError
        now = self._clock.now()
        spent = session.execute(
            update(BackupCodeRow)
            .where(BackupCodeRow.id == match.id, BackupCodeRow.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidFactorError
        return len(rows) - 1

    # ==== email and SMS codes ====================================================================
    def enrol_sms(self, uow: UnitOfWork, user_id: str, phone: str) -> str:
        """Start SMS enrolment: texts a code to `phone`; `confirm_channel` activates it."""
        number = clean_phone_number(phone)
        session = uow.session
        row = session.scalar(
            select(OtpChannelRow).where(
                OtpChannelRow.user_id == user_id, OtpChannelRow.channel == FactorKind.SMS.value
            )
        )
        if row is not None and row.confirmed_at is not None:
            raise FactorAlreadyEnrolledError("Remove the current phone number first.")
        row_id = row.id if row is not None else new_id()
        sealed = self._secrets.seal(
            session,
            number.encode(),
            table="mfa_otp_channel",
            column="destination_sealed",
            row_id=row_id,
            user_id=user_id,
        )
        if row is None:
            row = OtpChannelRow(
                id=row_id,
                user_id=user_id,
                channel=FactorKind.SMS.value,
                created_at=self._clock.now(),
                destination_sealed=sealed,
            )
            session.add(row)
        row.destination_sealed = sealed
        row.destination_hint = mask_phone(number)
        row.created_at = self._clock.now()
        session.flush()
        self._send_code(uow, user_id, FactorKind.SMS, enrol_purpose(FactorKind.SMS), number)
        return row.destination_hint

    def enrol_email(self, uow: UnitOfWork, user_id: str) -> str:
        """Start email-code enrolment on the account's (verified) address."""
        session = uow.session
        email = self._account_email(session, user_id)
        row = session.scalar(
            select(OtpChannelRow).where(
                OtpChannelRow.user_id == user_id, OtpChannelRow.channel == FactorKind.EMAIL.value
            )
        )
        if row is not None and row.confirmed_at is not None:
            raise FactorAlreadyEnrolledError("Email codes are already on.")
        if row is None:
            row = OtpChannelRow(
                id=new_id(),
                user_id=user_id,
                channel=FactorKind.EMAIL.value,
                created_at=self._clock.now(),
            )
            session.add(row)
        row.destination_hint = mask_email(email)[:40]
        session.flush()
        self._send_code(uow, user_id, FactorKind.EMAIL, enrol_purpose(FactorKind.EMAIL), email)
        return row.destination_hint

    def confirm_channel(
        self, uow: UnitOfWork, user_id: str, channel: FactorKind, code: str
    ) -> FactorCheck:
        session = uow.session
        row = session.scalar(
            select(OtpChannelRow).where(
                OtpChannelRow.user_id == user_id, OtpChannelRow.channel == channel.value
            )
        )
        if row is None or row.confirmed_at is not None:
            raise FactorNotEnrolledError("Start the set-up again.")
        try:
            self._check_code(uow, user_id, channel, enrol_purpose(channel), code)
        except (InvalidFactorError, ChallengeExhaustedError) as exc:
            return FactorCheck(ok=False, kind=channel, error=exc)
        row.confirmed_at = self._clock.now()
        session.flush()
        self._enrolled(uow, user_id, channel, {"destination": row.destination_hint})
        return FactorCheck(ok=True, kind=channel)

    def remove_channel(self, uow: UnitOfWork, user_id: str, channel: FactorKind) -> None:
        deleted = uow.session.execute(
            delete(OtpChannelRow).where(
                OtpChannelRow.user_id == user_id, OtpChannelRow.channel == channel.value
            )
        )
        if not deleted.rowcount:  # type: ignore[attr-defined]
            raise FactorNotEnrolledError
        self._removed(uow, user_id, channel, {})

    def send_code(self, uow: UnitOfWork, user_id: str, channel: FactorKind, purpose: str) -> str:
        """Send a one-time code over an enrolled channel for `purpose`; returns the masked
        destination. The code is valid 10 minutes, 5 attempts, once, for that purpose only."""
        if not valid_purpose(purpose):
            raise ValidationError("Unknown purpose.")
        session = uow.session
        row = self._require_channel(session, user_id, channel)
        if channel is FactorKind.SMS:
            assert row.destination_sealed is not None
            destination = self._secrets.open(
                session,
                row.destination_sealed,
                table="mfa_otp_channel",
                column="destination_sealed",
                row_id=row.id,
                user_id=user_id,
            ).decode()
        else:
            destination = self._account_email(session, user_id)
        self._send_code(uow, user_id, channel, purpose, destination)
        return row.destination_hint or ""

    def _require_channel(
        self, session: Session, user_id: str, channel: FactorKind
    ) -> OtpChannelRow:
        row = session.scalar(
            select(OtpChannelRow).where(
                OtpChannelRow.user_id == user_id,
                OtpChannelRow.channel == channel.value,
                OtpChannelRow.confirmed_at.is_not(None),
            )
        )
        if row is None:
            raise FactorNotEnrolledError
        return row

    def account_label(self, session: Session, user_id: str) -> str:
        """How an authenticator app names the account: its confirmed address, else its id."""
        email = self._email_of(session, user_id) if self._email_of else None
        return email or f"user {user_id[:8]}"

    def _account_email(self, session: Session, user_id: str) -> str:
        email = self._email_of(session, user_id) if self._email_of else None
        if not email:
            raise FactorNotEnrolledError("The account has no verified email address.")
        return email

    def _send_code(
        self, uow: UnitOfWork, user_id: str, channel: FactorKind, purpose: str, destination: str
    ) -> None:
        session = uow.session
        now = self._clock.now()
        recent = session.execute(
            select(func.count(), func.max(ChallengeRow.created_at)).where(
                ChallengeRow.user_id == user_id,
                ChallengeRow.kind == channel.value,
                ChallengeRow.created_at > now - (OTP_TTL * 6),
            )
        ).one()
        count, latest = int(recent[0] or 0), recent[1]
        if latest is not None and now - utc(latest) < OTP_RESEND_INTERVAL:
            wait = (OTP_RESEND_INTERVAL - (now - utc(latest))).total_seconds()
            raise CodeSendThrottledError(retry_after=max(1.0, wait))
        if count >= OTP_MAX_PER_HOUR:
            raise CodeSendThrottledError(retry_after=600.0)
        # A new code replaces any earlier one for the same purpose.
        session.execute(
            update(ChallengeRow)
            .where(
                ChallengeRow.user_id == user_id,
                ChallengeRow.kind == channel.value,
                ChallengeRow.purpose == purpose,
                ChallengeRow.consumed_at.is_(None),
            )
            .values(consumed_at=now)
            .execution_options(synchronize_session=False)
        )
        code = new_numeric_code()
        session.add(
            ChallengeRow(
                id=new_id(),
                user_id=user_id,
                kind=channel.value,
                purpose=purpose,
                secret=self._code_digest(session, channel.value, user_id, f"{purpose}\x00{code}"),
                attempts=0,
                max_attempts=OTP_MAX_ATTEMPTS,
                created_at=now,
                expires_at=now + OTP_TTL,
            )
        )
        session.flush()
        self._notifier.one_time_code(
            uow,
            user_id,
            channel.value,
            destination,
            Secret(code),
            purpose.split(":")[0],
            int(OTP_TTL.total_seconds() // 60),
        )
        uow.audit(
            AuditEvent(
                action="mfa.code.sent",
                subject=f"user:{user_id}",
                details={"channel": channel.value, "purpose": purpose.split(":")[0]},
            )
        )

    def _check_code(
        self, uow: UnitOfWork, user_id: str, channel: FactorKind, purpose: str, code: str
    ) -> None:
        session = uow.session
        now = self._clock.now()
        row = session.scalar(
            select(ChallengeRow)
            .where(
                ChallengeRow.user_id == user_id,
                ChallengeRow.kind == channel.value,
                ChallengeRow.purpose == purpose,
                ChallengeRow.consumed_at.is_(None),
            )
            .order_by(ChallengeRow.created_at.desc(), ChallengeRow.id.desc())
            .limit(1)
        )
        if row is None or utc(row.expires_at) <= now:
            raise InvalidFactorError
        # Count the attempt first, atomically: parallel guesses cannot share one attempt.
        counted = session.execute(
            update(ChallengeRow)
            .where(
                ChallengeRow.id == row.id,
                ChallengeRow.consumed_at.is_(None),
                ChallengeRow.attempts < ChallengeRow.max_attempts,
            )
            .values(attempts=ChallengeRow.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if counted.rowcount != 1:  # type: ignore[attr-defined]
            raise ChallengeExhaustedError
        cleaned = clean_numeric_code(code)
        expected = row.secret
        actual = self._code_digest(
            session, channel.value, user_id, f"{purpose}\x00{cleaned or 'x'}"
        )
        if cleaned is None or not hmac.compare_digest(expected.encode(), actual.encode()):
            raise InvalidFactorError
        spent = session.execute(
            update(ChallengeRow)
            .where(ChallengeRow.id == row.id, ChallengeRow.consumed_at.is_(None))
            .values(consumed_at=now)
            .execution_options(synchronize_session=False)
        )
        if spent.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidFactorError

    # ==== WebAuthn ===============================================================================
    def _user_credentials(self, session: Session, user_id: str) -> list[WebAuthnCredentialRow]:
        return list(
            session.scalars(
                select(WebAuthnCredentialRow)
                .where(WebAuthnCredentialRow.user_id == user_id)
                .limit(MAX_AUTHENTICATORS)
            )
        )

    def _new_webauthn_challenge(
        self, session: Session, user_id: str, kind: str, purpose: str
    ) -> tuple[str, bytes]:
        now = self._clock.now()
        challenge = secrets.token_bytes(32)
        row = ChallengeRow(
            id=new_id(),
            user_id=user_id,
            kind=kind,
            purpose=purpose,
            secret=_b64(challenge),
            attempts=0,
            max_attempts=1,
            created_at=now,
            expires_at=now + timedelta(seconds=WEBAUTHN_CHALLENGE_TTL_SECONDS),
        )
        session.add(row)
        session.flush()
        return row.id, challenge

    def _take_webauthn_challenge(
        self, session: Session, user_id: str, kind: str, purpose: str, challenge_id: str
    ) -> bytes:
        """The challenge's bytes, consumed now: single use, unexpired, this user and purpose."""
        now = self._clock.now()
        row = session.get(ChallengeRow, challenge_id[:36]) if challenge_id else None
        if (
            row is None
            or row.user_id != user_id
            or row.kind != kind
            or row.purpose != purpose
            or row.consumed_at is not None
            or utc(row.expires_at) <= now
        ):
            raise InvalidFactorError
        taken = session.execute(
            update(ChallengeRow)
            .where(ChallengeRow.id == row.id, ChallengeRow.consumed_at.is_(None))
            .values(consumed_at=now, attempts=1)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidFactorError
        return _unb64(row.secret)

    def begin_webauthn_registration(
        self, uow: UnitOfWork, user_id: str, user_name: str
    ) -> WebAuthnCeremony:
        session = uow.session
        existing = self._user_credentials(session, user_id)
        if len(existing) >= MAX_AUTHENTICATORS:
            raise TooManyAuthenticatorsError
        challenge_id, challenge = self._new_webauthn_challenge(
            session, user_id, "webauthn.create", enrol_purpose(FactorKind.WEBAUTHN)
        )
        options = rp_mod.registration_options(
            self.relying_party,
            # The user handle is the pseudonymous user id: no email or name in the credential.
            user_handle=user_id.encode(),
            user_name=user_name,
            challenge=challenge,
            existing=[(r.credential_id, list(r.transports or [])) for r in existing],
        )
        return WebAuthnCeremony(challenge_id=challenge_id, options=options)

    def finish_webauthn_registration(
        self,
        uow: UnitOfWork,
        user_id: str,
        challenge_id: str,
        credential: dict[str, Any],
        name: str,
    ) -> FactorCheck:
        session = uow.session
        label = clean_authenticator_name(name)
        try:
            challenge = self._take_webauthn_challenge(
                session,
                user_id,
                "webauthn.create",
                enrol_purpose(FactorKind.WEBAUTHN),
                challenge_id,
            )
            new = rp_mod.verify_registration(self.relying_party, credential, challenge=challenge)
        except InvalidFactorError as exc:
            return FactorCheck(ok=False, kind=FactorKind.WEBAUTHN, error=exc)
        if len(self._user_credentials(session, user_id)) >= MAX_AUTHENTICATORS:
            raise TooManyAuthenticatorsError
        taken = session.scalar(
            select(WebAuthnCredentialRow.id).where(
                WebAuthnCredentialRow.credential_id == new.credential_id
            )
        )
        if taken is not None:
            raise FactorAlreadyEnrolledError("That authenticator is already registered.")
        row = WebAuthnCredentialRow(
            id=new_id(),
            user_id=user_id,
            credential_id=new.credential_id,
            public_key=new.public_key,
            sign_count=new.sign_count,
            name=label,
            transports=new.transports,
            aaguid=new.aaguid,
            device_type=new.device_type,
            backed_up=new.backed_up,
            user_verified=new.user_verified,
            created_at=self._clock.now(),
        )
        session.add(row)
        session.flush()
        self._enrolled(
            uow,
            user_id,
            FactorKind.WEBAUTHN,
            {"authenticator": row.id, "name": label, "device_type": new.device_type},
        )
        return FactorCheck(ok=True, kind=FactorKind.WEBAUTHN, details={"authenticator": row.id})

    def begin_webauthn_authentication(
        self, uow: UnitOfWork, user_id: str, purpose: str
    ) -> WebAuthnCeremony:
        if not valid_purpose(purpose):
            raise ValidationError("Unknown purpose.")
        session = uow.session
        credentials = self._user_credentials(session, user_id)
        if not credentials:
            raise FactorNotEnrolledError
        challenge_id, challenge = self._new_webauthn_challenge(
            session, user_id, "webauthn.get", purpose
        )
        options = rp_mod.authentication_options(
            self.relying_party,
            challenge=challenge,
            allowed=[(r.credential_id, list(r.transports or [])) for r in credentials],
        )
        return WebAuthnCeremony(challenge_id=challenge_id, options=options)

    def _verify_assertion(
        self,
        uow: UnitOfWork,
        user_id: str,
        purpose: str,
        challenge_id: str,
        credential: dict[str, Any],
    ) -> str:
        session = uow.session
        challenge = self._take_webauthn_challenge(
            session, user_id, "webauthn.get", purpose, challenge_id
        )
        credential_id = rp_mod.assertion_credential_id(credential)
        row = session.scalar(
            select(WebAuthnCredentialRow).where(
                WebAuthnCredentialRow.credential_id == credential_id,
                WebAuthnCredentialRow.user_id == user_id,
            )
        )
        if row is None:
            raise InvalidFactorError
        reported = rp_mod.assertion_sign_count(credential)
        if (reported or row.sign_count) and reported <= row.sign_count:
            # A counter that does not move forward suggests a cloned authenticator: refuse and
            # leave a trace for the security team (the signature is not even looked at).
            uow.audit(
                AuditEvent(
                    action="mfa.webauthn.counter_regression",
                    outcome="denied",
                    subject=f"user:{user_id}",
                    details={
                        "authenticator": row.id,
                        "stored": row.sign_count,
                        "reported": reported,
                    },
                )
            )
            raise InvalidFactorError
        verified = rp_mod.verify_assertion(
            self.relying_party,
            credential,
            challenge=challenge,
            public_key=row.public_key,
            sign_count=row.sign_count,
        )
        advanced = session.execute(
            update(WebAuthnCredentialRow)
            .where(
                WebAuthnCredentialRow.id == row.id,
                WebAuthnCredentialRow.sign_count == row.sign_count,
            )
            .values(
                sign_count=verified.new_sign_count,
                last_used_at=self._clock.now(),
                backed_up=verified.backed_up,
            )
            .execution_options(synchronize_session=False)
        )
        if advanced.rowcount != 1:  # type: ignore[attr-defined]
            raise InvalidFactorError
        session.expire(row)
        return row.id

    def rename_authenticator(
        self, uow: UnitOfWork, user_id: str, authenticator_id: str, name: str
    ) -> None:
        row = self._own_authenticator(uow.session, user_id, authenticator_id)
        row.name = clean_authenticator_name(name)
        uow.session.flush()
        uow.audit(
            AuditEvent(
                action="mfa.webauthn.renamed",
                subject=f"user:{user_id}",
                details={"authenticator": row.id},
            )
        )

    def remove_authenticator(self, uow: UnitOfWork, user_id: str, authenticator_id: str) -> None:
        row = self._own_authenticator(uow.session, user_id, authenticator_id)
        name = row.name
        uow.session.delete(row)
        uow.session.flush()
        self._removed(
            uow, user_id, FactorKind.WEBAUTHN, {"authenticator": authenticator_id, "name": name}
        )

    def _own_authenticator(
        self, session: Session, user_id: str, authenticator_id: str
    ) -> WebAuthnCredentialRow:
        # Not an id: no row can have it (and a NUL byte must not reach PostgreSQL's driver).
        row = (
            session.get(WebAuthnCredentialRow, authenticator_id)
            if is_id(authenticator_id)
            else None
        )
        # Someone else's authenticator is indistinguishable from a missing one.
        if row is None or row.user_id != user_id:
            raise FactorNotEnrolledError
        return row

    # ==== recovery ===============================================================================
    def request_support_reset(
        self,
        uow: UnitOfWork,
        operator: Principal,
        user_id: str,
        *,
        verification_method: str,
        verification_reference: str,
        reason: str,
    ) -> ResetRequest:
        """First of four eyes: support asks to remove every factor of a user who lost them,
        recording how their identity was re-verified. Nothing changes until a different staff
        member approves (`approve_support_reset`)."""
        return open_reset_request(
            uow,
            operator,
            user_id,
            self._clock.now(),
            verification_method=verification_method,
            verification_reference=verification_reference,
            reason=reason,
        )

    def approve_support_reset(
        self, uow: UnitOfWork, operator: Principal, request_id: str
    ) -> ResetRecord:
        """Second of four eyes: remove every second factor of the request's user. Starts a
        24-hour cooling period for orders, withdrawals and new API keys."""
        request = take_reset_request(uow, operator, request_id, self._clock.now())
        return self._remove_every_factor(
            uow,
            request.user_id,
            performed_by=operator.actor,
            requested_by=request.requested_by,
            request_id=request.id,
            method=request.verification_method,
            reference=request.verification_reference,
            reason=request.reason,
        )

    def _remove_every_factor(
        self,
        uow: UnitOfWork,
        user_id: str,
        *,
        performed_by: str,
        requested_by: str,
        request_id: str,
        method: str,
        reference: str,
        reason: str,
    ) -> ResetRecord:
        session = uow.session
        before = self.summary(session, user_id)
        for table in (TotpRow, WebAuthnCredentialRow, OtpChannelRow, BackupCodeRow):
            session.execute(delete(table).where(table.user_id == user_id))
        session.execute(
            update(ChallengeRow)
            .where(ChallengeRow.user_id == user_id, ChallengeRow.consumed_at.is_(None))
            .values(consumed_at=self._clock.now())
            .execution_options(synchronize_session=False)
        )
        now = self._clock.now()
        row = FactorResetRow(
            id=new_id(),
            user_id=user_id,
            performed_by=performed_by,
            verification_method=method,
            verification_reference=reference,
            reason=reason,
            created_at=now,
            cooling_until=cooling_until(now),
        )
        session.add(row)
        session.flush()
        uow.audit(
            AuditEvent(
                action="mfa.reset",
                subject=f"user:{user_id}",
                details={
                    "reset_id": row.id,
                    "request_id": request_id,
                    "requested_by": requested_by,
                    "approved_by": performed_by,
                    "verification_method": method,
                    "verification_reference": reference,
                    "reason": reason,
                    "removed": before.kinds(),
                    "cooling_until": row.cooling_until.isoformat(),
                },
            )
        )
        self._notifier.security_notice(
            uow, user_id, "mfa.reset", {"cooling_until": row.cooling_until.isoformat()}
        )
        for listener in [*self.reset_listeners, *self.hold_listeners]:
            listener(uow, user_id)
        return ResetRecord(
            id=row.id, user_id=user_id, created_at=now, cooling_until=row.cooling_until
        )

    # ==== shared =================================================================================
    def _enrolled(
        self, uow: UnitOfWork, user_id: str, kind: FactorKind, details: dict[str, Any]
    ) -> None:
        uow.audit(
            AuditEvent(
                action="mfa.factor.enrolled",
                subject=f"user:{user_id}",
                details={"kind": kind.value, **details},
            )
        )
        self._notifier.security_notice(
            uow, user_id, "mfa.factor_added", {"kind": kind.value, **details}
        )

    def _removed(
        self, uow: UnitOfWork, user_id: str, kind: FactorKind, details: dict[str, Any]
    ) -> None:
        uow.audit(
            AuditEvent(
                action="mfa.factor.removed",
                subject=f"user:{user_id}",
                details={"kind": kind.value, **details},
            )
        )
        self._notifier.security_notice(
            uow, user_id, "mfa.factor_removed", {"kind": kind.value, **details}
        )

    def now_epoch(self) -> float:
        return self._clock.now().timestamp()

    def totp_step_now(self) -> int:
        return totp_step(self._clock.now().timestamp())

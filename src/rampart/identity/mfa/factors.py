"""What every factor shares: the answer a user gives, the outcome of checking it, the audit and
notice written when a factor is added or removed, and the summary of what a user has enrolled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rampart.identity.mfa.db import BackupCodeRow, OtpChannelRow, TotpRow, WebAuthnCredentialRow
from rampart.identity.mfa.domain import FactorKind, FactorSummary, InvalidFactorError
from rampart.identity.mfa.ports import Notifier
from rampart.kernel.errors import RampartError
from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork


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


class FactorEvents:
    """The audit entry and the owner's notice for a factor added or removed, in the caller's
    transaction: a factor never changes without its owner being told."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    def enrolled(
        self, uow: UnitOfWork, user_id: str, kind: FactorKind, details: dict[str, Any]
    ) -> None:
        self._record(uow, user_id, kind, details, "mfa.factor.enrolled", "mfa.factor_added")

    def removed(
        self, uow: UnitOfWork, user_id: str, kind: FactorKind, details: dict[str, Any]
    ) -> None:
        self._record(uow, user_id, kind, details, "mfa.factor.removed", "mfa.factor_removed")

    def _record(
        self,
        uow: UnitOfWork,
        user_id: str,
        kind: FactorKind,
        details: dict[str, Any],
        action: str,
        notice: str,
    ) -> None:
        uow.audit(
            AuditEvent(
                action=action, subject=f"user:{user_id}", details={"kind": kind.value, **details}
            )
        )
        self._notifier.security_notice(uow, user_id, notice, {"kind": kind.value, **details})


def backup_codes_remaining(session: Session, user_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(BackupCodeRow)
            .where(BackupCodeRow.user_id == user_id, BackupCodeRow.used_at.is_(None))
        )
        or 0
    )


def factor_summary(session: Session, user_id: str, *, email_factor: bool = True) -> FactorSummary:
    """Which factors the user has confirmed (pending enrolments do not count). With
    `email_factor` off (`mfa.email_factor_enabled`), email codes are no factor at all: a user
    who had only them signs in with the password and is asked to enrol a real one."""
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
        email=email_factor and FactorKind.EMAIL.value in by_channel,
        sms=(by_channel.get(FactorKind.SMS.value) or "")
        if FactorKind.SMS.value in by_channel
        else None,
        backup_codes_remaining=backup_codes_remaining(session, user_id),
    )

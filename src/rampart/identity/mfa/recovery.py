"""Account recovery holds: the cooling period after a factor reset or a risky password reset.

Two events put an account on hold for `COOLING_PERIOD` (24 hours): a support-assisted removal of
its factors (`mfa_reset`), and a password reset by email of an account whose only second factor
is that same mailbox (`mfa_recovery_hold`). In both, whoever now controls the account may be
someone who only controls the mailbox, or who talked support round; the hold gives the real owner
a day, and the notice we send them, to notice and react before money or credentials move.

During a hold, withdrawals and new API keys are refused (`MfaService.require_step_up`) and so are
new orders (the risk gate asks `MfaService.in_cooling_period` through its trader profile).

Why a hold and not "require another factor" for the email-only case: such an account has, by
definition, no other factor to ask for; refusing the reset would lock the owner out for good,
while the hold keeps the reset usable and takes away what a mailbox thief would want.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from rampart.access.domain import PermissionDeniedError, Principal, Role, ensure_staff_verified
from rampart.identity.mfa.db import FactorResetRequestRow, FactorResetRow, RecoveryHoldRow
from rampart.identity.mfa.domain import FactorSummary, ResetVerificationError, cooling_until
from rampart.kernel.clock import utc
from rampart.kernel.errors import ForbiddenError, NotFoundError, ValidationError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.platform.uow import UnitOfWork

#: The cause recorded for a reset by email of an account protected only by that mailbox.
EMAIL_ONLY_RESET = "password-reset-email-only"


def cooling_ends(session: Session, user_id: str) -> datetime | None:
    """When the latest hold of the user ends (it may be in the past); None if never held."""
    ends = [
        session.scalar(
            select(func.max(FactorResetRow.cooling_until)).where(FactorResetRow.user_id == user_id)
        ),
        session.scalar(
            select(func.max(RecoveryHoldRow.cooling_until)).where(
                RecoveryHoldRow.user_id == user_id
            )
        ),
    ]
    known = [utc(end) for end in ends if end is not None]
    return max(known) if known else None


def mailbox_is_the_only_barrier(summary: FactorSummary) -> bool:
    """Whether the reset mailbox alone is enough to take the account over: no factor the
    mailbox does not also open (an authenticator app, a security key, a phone) is enrolled.
    Backup codes do not count: they are checked only at sign-in, which the thief never needs
    to pass for the account's money once the password is theirs and email codes reach them."""
    return not (summary.totp or summary.webauthn or summary.sms is not None)


def hold_after_email_reset(
    uow: UnitOfWork, user_id: str, summary: FactorSummary, now: datetime
) -> datetime | None:
    """Start a hold when the password was just reset by email and the mailbox was the only
    barrier; returns when it ends (None when no hold was needed)."""
    if not mailbox_is_the_only_barrier(summary):
        return None
    row = RecoveryHoldRow(
        id=new_id(),
        user_id=user_id,
        cause=EMAIL_ONLY_RESET,
        created_at=now,
        cooling_until=cooling_until(now),
    )
    uow.session.add(row)
    uow.session.flush()
    uow.audit(
        AuditEvent(
            action="mfa.recovery_hold.started",
            subject=f"user:{user_id}",
            details={"cause": EMAIL_ONLY_RESET, "cooling_until": row.cooling_until.isoformat()},
        )
    )
    return row.cooling_until


class NoRecoveryHoldError(NotFoundError):
    code = "mfa-no-recovery-hold"
    title = "No hold after a password reset by email is running on this account"


def email_only_hold_running(session: Session, user_id: str, now: datetime) -> bool:
    """Whether a hold started by an email-only password reset is running now."""
    ends = session.scalar(
        select(func.max(RecoveryHoldRow.cooling_until)).where(
            RecoveryHoldRow.user_id == user_id, RecoveryHoldRow.cause == EMAIL_ONLY_RESET
        )
    )
    return ends is not None and now < utc(ends)


def end_email_only_holds(uow: UnitOfWork, user_id: str, now: datetime) -> None:
    """End every running email-only hold of the user now. A support reset's cooling period is
    not touched: its owner proved nothing a caller could not."""
    uow.session.execute(
        update(RecoveryHoldRow)
        .where(
            RecoveryHoldRow.user_id == user_id,
            RecoveryHoldRow.cause == EMAIL_ONLY_RESET,
            RecoveryHoldRow.cooling_until > now,
        )
        .values(cooling_until=now)
        .execution_options(synchronize_session=False)
    )
    uow.audit(
        AuditEvent(
            action="mfa.recovery_hold.lifted",
            subject=f"user:{user_id}",
            details={"cause": EMAIL_ONLY_RESET, "proof": "backup_code"},
        )
    )


# --- the four-eyes support reset -------------------------------------------------------------
#: Verification methods support may record for a reset; each names evidence kept elsewhere.
RESET_VERIFICATION_METHODS = frozenset(
    {"id-document", "video-call", "in-person", "signed-letter", "bank-transfer-challenge"}
)
#: A reset request nobody approved within this long lapses (the user asks again).
RESET_REQUEST_TTL = timedelta(hours=24)


class FactorResetFourEyesError(ForbiddenError):
    """Removing someone's factors needs two different staff members: one asks, another approves."""

    code = "four-eyes-required"
    title = "A second, different person must approve"


class ResetRequestNotFoundError(NotFoundError):
    code = "mfa-reset-request-not-found"
    title = "No pending factor-reset request with that id"


@dataclass(frozen=True, slots=True)
class ResetRequest:
    id: str
    user_id: str
    requested_by: str
    created_at: datetime
    expires_at: datetime

    def as_dict(self) -> dict[str, str]:
        return {
            "request_id": self.id,
            "user_id": self.user_id,
            "status": "pending",
            "requested_by": self.requested_by,
            "expires_at": self.expires_at.isoformat(),
        }


def ensure_reset_operator(operator: Principal, user_id: str) -> None:
    """Support or an administrator, signed in with a security key, never about themselves."""
    if not ({Role.SUPPORT.value, Role.ADMIN.value} & set(operator.roles)):
        raise PermissionDeniedError("Only support or an administrator can reset factors.")
    # A check on roles, not permissions: the staff role counts only after a WebAuthn sign-in.
    ensure_staff_verified(operator)
    if operator.user_id == user_id:
        raise PermissionDeniedError("Nobody resets their own factors.")


def open_reset_request(
    uow: UnitOfWork,
    operator: Principal,
    user_id: str,
    now: datetime,
    *,
    verification_method: str,
    verification_reference: str,
    reason: str,
) -> ResetRequest:
    """First of four eyes: record who asks to remove `user_id`'s factors and on what evidence.
    Nothing is removed until a different staff member approves (`take_reset_request`)."""
    ensure_reset_operator(operator, user_id)
    method = verification_method.strip().lower()
    reference = verification_reference.strip()
    if method not in RESET_VERIFICATION_METHODS or not (3 <= len(reference) <= 200):
        raise ResetVerificationError(
            "Give how identity was re-verified (one of: "
            + ", ".join(sorted(RESET_VERIFICATION_METHODS))
            + ") and the case reference of the evidence."
        )
    reason = reason.strip()
    if not (5 <= len(reason) <= 1000):
        raise ValidationError("Say why, in 5 to 1000 characters.")
    row = FactorResetRequestRow(
        id=new_id(),
        user_id=user_id,
        requested_by=operator.actor,
        verification_method=method,
        verification_reference=reference,
        reason=reason,
        created_at=now,
        expires_at=now + RESET_REQUEST_TTL,
    )
    uow.session.add(row)
    uow.session.flush()
    uow.audit(
        AuditEvent(
            action="mfa.reset.requested",
            subject=f"user:{user_id}",
            actor=operator.actor,
            details={"request_id": row.id, "verification_method": method, "reference": reference},
        )
    )
    return ResetRequest(row.id, user_id, row.requested_by, now, row.expires_at)


def pending_reset_requests(session: Session, user_id: str, now: datetime) -> list[ResetRequest]:
    """The user's factor-reset requests waiting for a second staff member, oldest first."""
    rows = session.scalars(
        select(FactorResetRequestRow)
        .where(
            FactorResetRequestRow.user_id == user_id,
            FactorResetRequestRow.outcome.is_(None),
            FactorResetRequestRow.expires_at > now,
        )
        .order_by(FactorResetRequestRow.created_at)
    )
    return [
        ResetRequest(r.id, r.user_id, r.requested_by, utc(r.created_at), utc(r.expires_at))
        for r in rows
    ]


def take_reset_request(
    uow: UnitOfWork, operator: Principal, request_id: str, now: datetime
) -> FactorResetRequestRow:
    """Second of four eyes: a pending, unexpired request, approved now by someone who is not
    the person who asked (nor the user). Approved exactly once, even under concurrency."""
    row = uow.session.get(FactorResetRequestRow, request_id[:36])
    if row is None or row.outcome is not None or utc(row.expires_at) <= now:
        raise ResetRequestNotFoundError
    ensure_reset_operator(operator, row.user_id)
    if hmac.compare_digest(operator.actor.encode(), row.requested_by.encode()):
        raise FactorResetFourEyesError(
            "The person who asked for this reset cannot also approve it."
        )
    taken = uow.session.execute(
        update(FactorResetRequestRow)
        .where(FactorResetRequestRow.id == row.id, FactorResetRequestRow.outcome.is_(None))
        .values(outcome="approved", decided_by=operator.actor, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise ResetRequestNotFoundError
    uow.session.refresh(row)
    return row

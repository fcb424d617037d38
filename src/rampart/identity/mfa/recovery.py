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

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rampart.identity.mfa.db import FactorResetRow, RecoveryHoldRow
from rampart.identity.mfa.domain import FactorSummary, cooling_until
from rampart.kernel.clock import utc
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

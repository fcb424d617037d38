"""Ending sessions takes a recent authentication (ASVS 7.5.2).

Whoever holds a stolen cookie or token must not be able to sign the owner out of their other
sessions (and keep the account to themselves), nor sign everyone out. So ending another session,
forgetting a device, or signing out everywhere needs the person to have authenticated within
`identity.reauthentication_minutes`, with at least one factor:

- an account with a second factor: that factor, at sign-in or at a step-up (`mfa_at`); when it
  is older the answer is 401 `step-up-required`, which clients already answer by stepping up;
- an account without one: its password, at sign-in; when that is older the answer is 401
  `reauthentication-required` and the person signs in again (a fresh session), then retries.

Ending the session one is using (logging out) needs nothing: it gives nobody anything.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from rampart.access.domain import Principal, StepUpRequiredError
from rampart.identity.db import SessionRow
from rampart.kernel.clock import utc
from rampart.kernel.errors import UnauthorizedError

#: A timestamp up to this far ahead of our clock is accepted (another process's clock).
CLOCK_SKEW_SECONDS = 5.0


class ReauthenticationRequiredError(UnauthorizedError):
    """The action needs a sign-in of at most a few minutes ago: sign in again, then retry."""

    code = "reauthentication-required"
    title = "Sign in again to continue"


def check_recent_authentication(
    principal: Principal,
    signed_in_at: float | None,
    now: float,
    *,
    minutes: int,
    second_factor: bool,
) -> None:
    """The rule itself (pure): `signed_in_at` is when the principal's session was created (its
    password proven), None when the credential is no session of the person's."""
    window = minutes * 60

    def fresh(at: float | None) -> bool:
        return at is not None and -CLOCK_SKEW_SECONDS <= now - at <= window

    if second_factor:
        if fresh(principal.mfa_at):
            return
        raise StepUpRequiredError(
            f"Confirm your second factor again (valid {minutes} minutes), then retry.",
            step_up_minutes=minutes,
        )
    if not fresh(signed_in_at):
        raise ReauthenticationRequiredError(
            f"Ending sessions needs a sign-in of at most {minutes} minutes ago: sign in again, "
            "then retry."
        )


def require_recent_authentication(
    session: Session, principal: Principal, now: float, *, minutes: int, second_factor: bool
) -> None:
    """Apply the rule to a request's principal, reading its session's sign-in time;
    `second_factor`: whether the person has one (the MFA service's answer)."""
    signed_in_at = None
    if principal.method in ("session", "bearer") and principal.credential_id:
        row = session.get(SessionRow, principal.credential_id)
        if row is not None and row.user_id == principal.user_id:
            signed_in_at = utc(row.created_at).timestamp()
    check_recent_authentication(
        principal, signed_in_at, now, minutes=minutes, second_factor=second_factor
    )

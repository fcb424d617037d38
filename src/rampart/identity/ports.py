"""Identity's seams: what other domains need of it, and what it needs of them.

`UserDirectory` is the account book as other domains read it (API keys ask whether an owner
may still act and where to tell them; risk asks for an account's status). Implemented by
`rampart.identity.accounts.AccountService` (SQL) and `rampart.identity.memory.InMemoryUsers`;
`tests/identity/test_user_directory_contract.py` holds both to the same behaviour.

Roles come from `rampart.access.ports.RoleDirectory`, messages go through
`rampart.notifications.ports.Notifier`.

`SecondFactors` is the seam for multi-factor authentication (`rampart.identity.mfa`): after the
password step, a user for whom it names any factor gets a pending sign-in instead of a session,
and only `LoginService.complete_pending_login` (called by the MFA code once a factor is proven)
turns that into a session or tokens.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session

from rampart.identity.domain import User


class SecondFactors(Protocol):
    """The factors a user must pass after the password, e.g. `["totp", "webauthn"]`; an empty
    list means the password alone completes the sign-in."""

    def required_factors(self, session: Session, user_id: str) -> list[str]: ...


class UserDirectory(Protocol):
    def exists(self, session: Session, user_id: str) -> bool:
        """Whether an account with this id was ever created (closed ones included)."""
        ...

    def get(self, session: Session, user_id: str) -> User:
        """An open (active or locked) account; `NotFoundError` for an unknown or closed one."""
        ...

    def is_active(self, session: Session, user_id: str) -> bool:
        """Whether the account may act at all: it exists and is neither locked nor closed."""
        ...

    def contact_email(self, session: Session, user_id: str) -> str | None:
        """Its confirmed address while it is open; None otherwise."""
        ...

"""`UserDirectory` in memory, for service tests of other domains that need account owners
without a database. Accounts are added, locked and closed directly (no mail, no passwords)."""

from __future__ import annotations

from dataclasses import replace

from rampart.identity.domain import AccountStatus, User
from rampart.kernel.clock import Clock
from rampart.kernel.errors import NotFoundError
from rampart.kernel.ids import new_id


class InMemoryUsers:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._users: dict[str, User] = {}

    def add(self, email: str, *, verified: bool = True) -> str:
        user = User(new_id(), email, verified, AccountStatus.ACTIVE, self._clock.now())
        self._users[user.id] = user
        return user.id

    def set_locked(self, user_id: str, locked: bool) -> None:
        user = self.get(None, user_id)
        status = AccountStatus.LOCKED if locked else AccountStatus.ACTIVE
        self._users[user_id] = replace(user, status=status)

    def close(self, user_id: str) -> None:
        user = self.get(None, user_id)
        # A closed account's address is released, as in the database.
        self._users[user_id] = replace(user, status=AccountStatus.CLOSED, email="")

    def exists(self, session: object, user_id: str) -> bool:
        return user_id in self._users

    def get(self, session: object, user_id: str) -> User:
        user = self._users.get(user_id)
        if user is None or user.status == AccountStatus.CLOSED:
            raise NotFoundError("No such user.")
        return user

    def is_active(self, session: object, user_id: str) -> bool:
        user = self._users.get(user_id)
        return user is not None and user.status == AccountStatus.ACTIVE

    def contact_email(self, session: object, user_id: str) -> str | None:
        user = self._users.get(user_id)
        if user is None or user.status == AccountStatus.CLOSED or not user.email_verified:
            return None
        return user.email

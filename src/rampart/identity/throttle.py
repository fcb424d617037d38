"""Failed sign-ins, counted per account and per client IP, in the database.

Per account, the key is a keyed hash of the email, not the user id: an address with no account
is throttled exactly like one with an account, so throttling reveals nothing about existence.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from rampart.config import IdentitySettings
from rampart.identity.db import LoginThrottleRow
from rampart.identity.domain import (
    ThrottlePolicy,
    ThrottleState,
    after_failure,
    wait_seconds,
)
from rampart.kernel.clock import Clock, utc
from rampart.platform.uow import UnitOfWork


def account_key(email_key: str) -> str:
    return f"email:{email_key}"


def ip_key(ip: str | None) -> str:
    return f"ip:{(ip or 'unknown')[:64]}"


class LoginThrottle:
    def __init__(self, clock: Clock, settings: IdentitySettings) -> None:
        self._clock = clock
        common = {
            "base_seconds": settings.throttle_base_seconds,
            "max_seconds": settings.throttle_max_seconds,
            "lock_seconds": settings.lock_minutes * 60.0,
            "window_seconds": settings.failure_window_minutes * 60.0,
        }
        self.account_policy = ThrottlePolicy(
            free_failures=settings.account_free_failures,
            lock_after=settings.account_lock_after,
            **common,
        )
        self.ip_policy = ThrottlePolicy(
            free_failures=settings.ip_free_failures, lock_after=settings.ip_lock_after, **common
        )

    @staticmethod
    def _state(row: LoginThrottleRow | None) -> ThrottleState:
        if row is None:
            return ThrottleState()
        return ThrottleState(
            failures=row.failures,
            last_failure_at=utc(row.last_failure_at) if row.last_failure_at else None,
            locked_until=utc(row.locked_until) if row.locked_until else None,
        )

    def wait(self, session: Session, email_key: str, ip: str | None) -> float:
        """Seconds before another attempt for this account from this IP may be tried."""
        now = self._clock.now()
        account = self._state(session.get(LoginThrottleRow, account_key(email_key)))
        by_ip = self._state(session.get(LoginThrottleRow, ip_key(ip)))
        return max(
            wait_seconds(account, now, self.account_policy),
            wait_seconds(by_ip, now, self.ip_policy),
        )

    def _bump(self, uow: UnitOfWork, key: str, policy: ThrottlePolicy) -> ThrottleState:
        now = self._clock.now()
        row = uow.session.get(LoginThrottleRow, key, with_for_update=True)
        state = after_failure(self._state(row), now, policy)
        if row is None:
            row = LoginThrottleRow(key=key)
            uow.session.add(row)
        row.failures = state.failures
        row.last_failure_at = state.last_failure_at
        row.locked_until = state.locked_until
        return state

    def record_failure(self, uow: UnitOfWork, email_key: str, ip: str | None) -> bool:
        """Count a failure against both keys; True when it has just locked the account."""
        now = self._clock.now()
        before = self._state(uow.session.get(LoginThrottleRow, account_key(email_key)))
        account = self._bump(uow, account_key(email_key), self.account_policy)
        self._bump(uow, ip_key(ip), self.ip_policy)
        uow.session.flush()
        was_locked = before.locked_until is not None and before.locked_until > now
        return account.locked_until is not None and not was_locked

    def clear_account(self, uow: UnitOfWork, email_key: str) -> None:
        """Forget an account's failures: after a successful sign-in or a password reset. The IP
        counter is kept, or one valid account would let an attacker reset it between guesses."""
        uow.session.execute(
            delete(LoginThrottleRow).where(LoginThrottleRow.key == account_key(email_key))
        )

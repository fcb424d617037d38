"""Crypto-shredding: destroy a person's per-user keys, so that all their sealed data becomes
unreadable everywhere, backups included (the shred register replays shreds after a restore)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import select

from rampart.kernel.clock import Clock
from rampart.platform.logging import get_logger
from rampart.vault.db import ShreddedUserRow, UserKeyRow
from rampart.vault.keys import (
    KeyRing,
    SessionLike,
    after_commit,
    audit_key_event,
    lock_user_keys,
    session_of,
)

log = get_logger("rampart.vault")


class Shredding:
    """Shred users, and tell the listeners inside the shred's transaction and after its commit."""

    def __init__(self, keys: KeyRing, clock: Clock) -> None:
        self._keys = keys
        self._clock = clock
        self._shred_listeners: list[Callable[[str], None]] = []
        self._shredding_listeners: list[Callable[[SessionLike, str], None]] = []

    def on_shred(self, listener: Callable[[str], None]) -> None:
        """Call `listener(user_id)` after a shred commits (the shred register uses it)."""
        self._shred_listeners.append(listener)

    def on_shredding(self, listener: Callable[[SessionLike, str], None]) -> None:
        """Call `listener(db, user_id)` inside every shred's transaction, before the keys go.

        What a person's sealed data protected (their API key secrets, second factors, address)
        stops opening at the shred, so the credentials built on it must end in the same commit,
        or they would live on as requests that can only fail. The vault knows no credentials
        (it sits below the domains that issue them), so those domains register here, at
        bootstrap; a listener that raises rolls the whole shred back.
        """
        self._shredding_listeners.append(listener)

    def shred_user(self, db: SessionLike, user_id: str) -> int:
        """Destroy every per-user key of `user_id`: all their sealed data becomes unreadable.

        First the `on_shredding` listeners end what the user's data guarded (credentials), in
        this transaction. Then the wrapped keys are overwritten, the user is recorded so nothing
        is sealed for them again, and after commit the shred register outside the database
        records it, so that a restored backup forgets the keys too. Returns how many keys were
        destroyed.
        """
        session = session_of(db)
        for before in list(self._shredding_listeners):
            before(db, user_id)
        now = self._clock.now()
        destroyed = 0
        # Before the SELECT: it must see every key whose creator we waited for.
        lock_user_keys(session, user_id, exclusive=True)
        for row in session.scalars(
            select(UserKeyRow).where(UserKeyRow.user_id == user_id).with_for_update()
        ):
            if row.wrapped_key is not None:
                destroyed += 1
            row.wrapped_key = None
            row.destroyed_at = row.destroyed_at or now
        if session.get(ShreddedUserRow, user_id) is None:
            session.add(ShreddedUserRow(user_id=user_id, shredded_at=now))
        session.flush()
        self._keys.forget_user(user_id)
        listeners = list(self._shred_listeners)

        def notify() -> None:
            self._keys.forget_user(user_id)
            for listener in listeners:
                listener(user_id)

        after_commit(session, notify)
        log.info("vault.user.shredded", keys=destroyed)
        audit_key_event(db, "vault.user.shredded", f"user:{user_id}", keys=destroyed)
        return destroyed

    def apply_shreds(self, db: SessionLike, user_ids: Iterable[str]) -> int:
        """Shred each of `user_ids` again (after restoring a backup taken before they were)."""
        total = 0
        for user_id in user_ids:
            total += self.shred_user(db, user_id)
        return total

    def is_shredded(self, db: SessionLike, user_id: str) -> bool:
        return session_of(db).get(ShreddedUserRow, user_id) is not None

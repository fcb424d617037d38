"""The vault's keys: data keys per purpose and version, per-user keys, and the memory they live in.

Data keys are stored wrapped by the provider's KEK (`vault_data_key`), created on first use in
the caller's transaction; per-user keys (`vault_user_key`) are wrapped by their purpose's data key
so that shredding a user destroys only that user's keys. Unwrapped keys are cached for
`key_cache_seconds`, never while the transaction that created them may still roll back.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rampart.kernel.clock import Clock
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.platform.cache import TTLCache
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.vault.db import DataKeyRow, ShreddedUserRow, UserKeyRow
from rampart.vault.domain import (
    USER_KEY_ID_BYTES,
    Header,
    Purpose,
    ShreddedError,
    UnreadableError,
    aead_unwrap,
    aead_wrap,
    data_key_context,
    new_key,
    user_key_context,
)
from rampart.vault.providers import KeyProvider

log = get_logger("rampart.vault")

SessionLike = UnitOfWork | Session


def session_of(db: SessionLike) -> Session:
    return db.session if isinstance(db, UnitOfWork) else db


def audit_key_event(db: SessionLike, action: str, subject: str, **details: Any) -> None:
    """Key lifecycle events go to the audit log with the caller's transaction (when it has one)."""
    if isinstance(db, UnitOfWork):
        db.audit(AuditEvent(action=action, subject=subject, details=details))


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` when the transaction that is open now commits, and never if it rolls back.

    A plain `after_commit` listener would outlive a rollback and fire at the session's next,
    unrelated commit (a rolled-back shred would still reach the shred register).
    """
    opened = session.get_nested_transaction() or session.get_transaction()
    chain = []
    while opened is not None:
        chain.append(opened)
        opened = opened.parent
    live = True

    def fire(_session: Session) -> None:
        nonlocal live
        if live:
            live = False
            callback()

    def on_rollback(_session: Session, previous: Any) -> None:
        nonlocal live
        # Only the rollback of the transaction we ran in (or of one around it) undoes our work;
        # a savepoint opened and rolled back later inside it does not.
        if any(previous is tx for tx in chain):
            live = False

    event.listen(session, "after_commit", fire, once=True)
    event.listen(session, "after_soft_rollback", on_rollback)


def _text_equal(a: str, b: str) -> bool:
    # compare_digest refuses non-ASCII str: compare the UTF-8 bytes instead.
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def lock_user_keys(session: Session, user_id: str, *, exclusive: bool) -> None:
    """Serialise creating a user's keys against shredding that user (PostgreSQL).

    Under READ COMMITTED a shred cannot see a user key that a concurrent transaction has created
    but not yet committed, and that transaction's "is this user shredded?" check cannot see the
    shred: both commit, and the shredded user has a live key. Creators take this transaction lock
    shared, a shred takes it exclusively, each until commit. SQLite needs nothing: its writers
    run one at a time (`BEGIN IMMEDIATE`).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(b"rampart.vault.user-keys\x00" + user_id.encode("utf-8")).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    session.execute(text(f"SELECT {function}(:key)"), {"key": key})


#: Unwrapped keys held in memory at most: per-user keys are one per (user, purpose, version), and
#: a re-encryption pass over a million users must not leave a million keys in the heap.
MAX_CACHED_KEYS = 10_000


class _KeyCache:
    """Unwrapped keys and current versions, for `ttl` seconds (evicted at once in this process).

    Bounded (least recently used out first) and expiring on every access path, so key material
    does not linger in memory past `key_cache_seconds` or pile up with the number of users.
    """

    def __init__(self, ttl: float, clock: Clock, max_entries: int = MAX_CACHED_KEYS) -> None:
        self.ttl = ttl
        self._items: TTLCache[tuple[Any, ...], Any] = TTLCache(max_entries, clock.monotonic, ttl)
        self._puts = 0

    def get(self, key: tuple[Any, ...]) -> Any | None:
        return self._items.get(key)

    def put(self, key: tuple[Any, ...], value: Any) -> None:
        if self.ttl <= 0:
            return
        self._items.set(key, value)
        self._puts += 1
        if self._puts % 256 == 0:
            self._items.purge_expired()

    def evict(self, match: Callable[[tuple[Any, ...], Any], bool]) -> None:
        self._items.delete_where(match)

    def __len__(self) -> int:
        return len(self._items)


class KeyRing:
    """Finds, creates and unwraps the keys that seal and open; caches them unwrapped.

    Cache entries: `("current", family)` -> version, `("key", family, version)` -> data key,
    `("user", purpose, version, user_id)` -> (key id, key) for sealing, and
    `("user-id", key id hex)` -> (owner, key) for opening.
    """

    def __init__(self, provider: KeyProvider, clock: Clock, cache_seconds: float) -> None:
        self._provider = provider
        self._clock = clock
        self.cache = _KeyCache(cache_seconds, clock)

    def current_key(self, session: Session, family: str) -> tuple[int, bytes]:
        """The newest live version of `family` and its key (the first is created if none)."""
        version = self.cache.get(("current", family))
        if version is None:
            row = session.scalar(
                select(DataKeyRow)
                .where(DataKeyRow.family == family, DataKeyRow.destroyed_at.is_(None))
                .order_by(DataKeyRow.version.desc())
                .limit(1)
            )
            if row is None:
                row = self._create_first_key(session, family)
            version = row.version
            if not self._pending(session, family, version):
                self.cache.put(("current", family), version)
        return version, self.data_key(session, family, version)

    def _pending(self, session: Session, family: str, version: int) -> bool:
        pending: set[tuple[str, int]] = session.info.get("rampart.vault.pending", set())
        return (family, version) in pending

    def new_data_key_row(self, session: Session, family: str, version: int) -> DataKeyRow:
        """A fresh data key wrapped under the current KEK (the caller adds the row)."""
        row = DataKeyRow(
            id=new_id(),
            family=family,
            version=version,
            kek_id=self._provider.kek_id,
            wrapped_key=self._provider.wrap(new_key(), data_key_context(family, version)),
            created_at=self._clock.now(),
        )
        # Until this transaction commits the key may vanish with a rollback: never cache it.
        session.info.setdefault("rampart.vault.pending", set()).add((family, version))
        return row

    def _create_first_key(self, session: Session, family: str) -> DataKeyRow:
        try:
            with session.begin_nested():
                row = self.new_data_key_row(session, family, 1)
                session.add(row)
            log.info("vault.key.created", family=family, version=1)
            return row
        except IntegrityError:
            # Another transaction created it first; use theirs.
            session.info.get("rampart.vault.pending", set()).discard((family, 1))
            existing = session.scalar(
                select(DataKeyRow).where(DataKeyRow.family == family, DataKeyRow.version == 1)
            )
            if existing is None or existing.destroyed_at is not None:
                raise
            return existing

    def data_key(self, session: Session, family: str, version: int) -> bytes:
        cached = self.cache.get(("key", family, version))
        if cached is not None:
            return bytes(cached)
        row = session.scalar(
            select(DataKeyRow).where(DataKeyRow.family == family, DataKeyRow.version == version)
        )
        if row is None or row.wrapped_key is None or row.kek_id is None:
            raise UnreadableError()
        key = self._provider.unwrap(row.kek_id, row.wrapped_key, data_key_context(family, version))
        if not self._pending(session, family, version):
            self.cache.put(("key", family, version), key)
        return key

    def user_key_for_seal(
        self, session: Session, purpose: Purpose, version: int, purpose_key: bytes, user_id: str
    ) -> tuple[bytes, bytes]:
        """The id and key of `user_id`'s key for `purpose` at `version` (created if none)."""
        cached = self.cache.get(("user", purpose.value, version, user_id))
        if cached is not None:
            return cached
        if session.get(ShreddedUserRow, user_id) is not None:
            raise ShreddedError()
        row = session.scalar(
            select(UserKeyRow).where(
                UserKeyRow.purpose == purpose.value,
                UserKeyRow.user_id == user_id,
                UserKeyRow.key_version == version,
            )
        )
        pending = False
        if row is None:
            row, pending = self._create_user_key(session, purpose, version, purpose_key, user_id)
        if row.wrapped_key is None:
            raise ShreddedError()
        key_id = bytes.fromhex(row.id)
        key = self._unwrap_user_key(row, purpose_key)
        if not pending:
            self.cache.put(("user", purpose.value, version, user_id), (key_id, key))
        return key_id, key

    def _create_user_key(
        self, session: Session, purpose: Purpose, version: int, purpose_key: bytes, user_id: str
    ) -> tuple[UserKeyRow, bool]:
        lock_user_keys(session, user_id, exclusive=False)
        # Checked again under the lock: a shred may have committed while we waited for it.
        if session.scalar(
            select(func.count())
            .select_from(ShreddedUserRow)
            .where(ShreddedUserRow.user_id == user_id)
        ):
            raise ShreddedError()
        key_id = new_id().replace("-", "")
        assert len(bytes.fromhex(key_id)) == USER_KEY_ID_BYTES
        context = user_key_context(purpose, version, user_id, bytes.fromhex(key_id))
        row = UserKeyRow(
            id=key_id,
            purpose=purpose.value,
            user_id=user_id,
            key_version=version,
            wrapped_key=aead_wrap(purpose_key, new_key(), context),
            created_at=self._clock.now(),
        )
        try:
            with session.begin_nested():
                session.add(row)
            return row, True
        except IntegrityError:
            existing = session.scalar(
                select(UserKeyRow).where(
                    UserKeyRow.purpose == purpose.value,
                    UserKeyRow.user_id == user_id,
                    UserKeyRow.key_version == version,
                )
            )
            if existing is None:
                raise
            return existing, False

    def _unwrap_user_key(self, row: UserKeyRow, purpose_key: bytes) -> bytes:
        if row.wrapped_key is None:
            raise ShreddedError()
        context = user_key_context(
            Purpose(row.purpose), row.key_version, row.user_id, bytes.fromhex(row.id)
        )
        return aead_unwrap(purpose_key, row.wrapped_key, context)

    def key_for_open(self, session: Session, header: Header, user_id: str | None) -> bytes:
        """The key a ciphertext with `header` was sealed under, for `user_id` only."""
        if header.user_key_id is None:
            if user_id is not None:
                # Sealed without a user key but opened as a user's: not what was stored.
                raise UnreadableError()
            return self.data_key(session, header.purpose.value, header.key_version)
        if user_id is None:
            raise UnreadableError()
        key_hex = header.user_key_id.hex()
        cached = self.cache.get(("user-id", key_hex))
        if cached is not None:
            owner, key = cached
            if not _text_equal(owner, user_id):
                raise UnreadableError()
            return bytes(key)
        row = session.get(UserKeyRow, key_hex)
        # Ownership first: "shredded" is an answer for the owner only, not for anyone who asks.
        if (
            row is None
            or row.purpose != header.purpose.value
            or row.key_version != header.key_version
            or not _text_equal(row.user_id, user_id)
        ):
            raise UnreadableError()
        if row.wrapped_key is None:
            raise ShreddedError()
        purpose_key = self.data_key(session, row.purpose, row.key_version)
        key = self._unwrap_user_key(row, purpose_key)
        if row not in session.new:
            self.cache.put(("user-id", key_hex), (row.user_id, key))
        return key

    def owner_of(self, session: Session, header: Header) -> str | None:
        """Whose key sealed `header`'s ciphertext (None: a purpose key); `ShreddedError` if the
        owner was shredded."""
        if header.user_key_id is None:
            return None
        row = session.get(UserKeyRow, header.user_key_id.hex())
        if row is None:
            raise UnreadableError()
        if row.wrapped_key is None:
            raise ShreddedError()
        return row.user_id

    def forget(self, match: Callable[[tuple[Any, ...], Any], bool]) -> None:
        """Drop the cached entries that `match(key, value)` selects."""
        self.cache.evict(match)

    def forget_user(self, user_id: str) -> None:
        self.cache.evict(
            lambda k, v: (
                (k[0] == "user" and k[-1] == user_id) or (k[0] == "user-id" and v[0] == user_id)
            )
        )

"""The vault: seal and open secrets at rest. This is the API other domains call.

How to use it (the signature is stable)::

    from rampart.vault import Purpose, SealContext

    ctx = SealContext(table="mfa_totp", column="secret", row_id=row.id)
    row.secret = container.vault.seal(uow, Purpose.MFA_SECRET, seed, ctx, user_id=user.id)
    ...
    seed = container.vault.open(uow, Purpose.MFA_SECRET, row.secret, ctx, user_id=user.id)
    totp = pyotp.TOTP(seed.reveal().decode())   # reveal only at the moment of use

    row.tax_id_index = container.vault.blind_index(uow, "identity.tax_id", normalised_tax_id)

- `seal(uow_or_session, purpose, plaintext: bytes | str | Secret, context, *, user_id=None)
  -> bytes` and `open(...) -> Secret[bytes]` (`open_text` -> `Secret[str]`). The first argument
  is the caller's `UnitOfWork` (or its SQLAlchemy session): data keys are stored wrapped in the
  database, created on first use in the caller's transaction, and cached unwrapped in memory.
- The `SealContext` (table, column, row id) is bound into the ciphertext: a value copied to another
  row or column does not open. Create the row id first (`new_id()`), then seal.
- Pass `user_id` for a person's data (tax ids, identity documents, bank details, names): it is
  then sealed under a per-user key that `shred_user` destroys, which makes that data unreadable
  everywhere, in backups too. Opening with a different `user_id` fails.
- Every failure to open is `UnreadableError` (or its subclass `ShreddedError`), never a hint of
  which check failed.
- Store ciphertexts in a `Sealed(Purpose.X)` column (`rampart.vault.columns`): it refuses
  plaintext, and it tells the re-encryption job and `rampart keys status` where ciphertexts live.
- `blind_index(uow, index_name, value)` gives a hex HMAC-SHA256 for equality lookups of an
  encrypted field. Normalise the value first (strip, case-fold) as the lookup will.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import column as sql_column
from sqlalchemy import event, func, select, text, update
from sqlalchemy import table as sql_table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from rampart.config import VaultSettings
from rampart.kernel.clock import Clock
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.kernel.secret import Secret
from rampart.platform.cache import TTLCache
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.vault.db import DataKeyRow, ShreddedUserRow, UserKeyRow
from rampart.vault.domain import (
    BLIND_INDEX_FAMILY,
    SQL_PURPOSE_AT,
    SQL_VERSION_AT,
    USER_KEY_ID_BYTES,
    Header,
    KeyStateError,
    PlaintextTooLargeError,
    Purpose,
    SealContext,
    ShreddedError,
    UnreadableError,
    as_bytes,
    blind_index,
    blind_index_key,
    data_key_context,
    new_key,
    open_with,
    parse_header,
    purpose_bytes,
    seal_with,
    user_key_context,
    version_bytes,
)
from rampart.vault.providers import KeyProvider

log = get_logger("rampart.vault")

SessionLike = UnitOfWork | Session


def _session(db: SessionLike) -> Session:
    return db.session if isinstance(db, UnitOfWork) else db


def _audit(db: SessionLike, action: str, subject: str, **details: Any) -> None:
    """Key lifecycle events go to the audit log with the caller's transaction (when it has one)."""
    if isinstance(db, UnitOfWork):
        db.audit(AuditEvent(action=action, subject=subject, details=details))


def _after_commit(session: Session, callback: Callable[[], None]) -> None:
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


def _lock_user_keys(session: Session, user_id: str, *, exclusive: bool) -> None:
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


@dataclass(frozen=True, slots=True)
class EncryptedColumn:
    """Where ciphertexts of one purpose live, so that rotation can find and re-encrypt them."""

    table: str
    column: str
    purpose: Purpose
    id_column: str = "id"


@dataclass(frozen=True, slots=True)
class KeyVersionStatus:
    family: str
    version: int
    state: str  # current | retired | destroyed
    created_at: datetime
    age_days: float
    kek_id: str | None
    ciphertexts: int | None  # None for the blind-index key, which seals nothing


@dataclass
class BatchResult:
    scanned: int = 0
    reencrypted: int = 0
    #: Sealed under a destroyed user key: unreadable by design, left as they are.
    shredded: int = 0
    #: Could not be opened (altered or misplaced): left as they are and logged by row id.
    unreadable: int = 0
    #: Changed by someone else between read and write: picked up by the next pass.
    skipped: int = 0
    last_id: str | None = None


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


class VaultService:
    """Envelope encryption: per-purpose data keys wrapped by the provider's KEK."""

    def __init__(self, provider: KeyProvider, clock: Clock, settings: VaultSettings) -> None:
        self._provider = provider
        self._clock = clock
        self._settings = settings
        self._cache = _KeyCache(settings.key_cache_seconds, clock)
        self._columns: dict[tuple[str, str], EncryptedColumn] = {}
        self._shred_listeners: list[Callable[[str], None]] = []
        self._shredding_listeners: list[Callable[[SessionLike, str], None]] = []

    @property
    def provider(self) -> KeyProvider:
        return self._provider

    # --- the API domains use ---------------------------------------------------------------
    def seal(
        self,
        db: SessionLike,
        purpose: Purpose,
        plaintext: bytes | str | Secret[Any],
        context: SealContext,
        *,
        user_id: str | None = None,
    ) -> bytes:
        """Encrypt `plaintext` for `context` under the newest key of `purpose`."""
        session = _session(db)
        purpose = Purpose(purpose)
        raw = as_bytes(plaintext.reveal() if isinstance(plaintext, Secret) else plaintext)
        if len(raw) > self._settings.max_plaintext_bytes:
            raise PlaintextTooLargeError()
        version, key = self._current_key(session, purpose.value)
        if user_id is None:
            return seal_with(key, Header(purpose, version), raw, context)
        key_id, user_key = self._user_key_for_seal(session, purpose, version, key, user_id)
        return seal_with(user_key, Header(purpose, version, key_id), raw, context)

    def open(
        self,
        db: SessionLike,
        purpose: Purpose,
        ciphertext: bytes,
        context: SealContext,
        *,
        user_id: str | None = None,
    ) -> Secret[bytes]:
        """Decrypt a value sealed for `context`; `UnreadableError` for any failure."""
        session = _session(db)
        header = parse_header(ciphertext)
        if header.purpose != Purpose(purpose):
            raise UnreadableError()
        key = self._key_for_open(session, header, user_id)
        return Secret(open_with(key, header, ciphertext, context))

    def open_text(
        self,
        db: SessionLike,
        purpose: Purpose,
        ciphertext: bytes,
        context: SealContext,
        *,
        user_id: str | None = None,
    ) -> Secret[str]:
        raw = self.open(db, purpose, ciphertext, context, user_id=user_id).reveal()
        try:
            return Secret(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise UnreadableError() from None

    def blind_index(self, db: SessionLike, index: str, value: bytes | str) -> str:
        """HMAC-SHA256 of `value` under index `index`'s own key, as 64 hex characters.

        Equal inputs give equal outputs, so store it beside the ciphertext for equality lookups.
        The key never rotates with the data keys (every stored index would have to be recomputed
        from plaintext); it is wrapped by the KEK like the data keys and moves with rotate-kek.
        """
        if not index:
            raise ValueError("a blind index needs a name")
        _version, root = self._current_key(_session(db), BLIND_INDEX_FAMILY)
        return blind_index(blind_index_key(root, index), as_bytes(value))

    # --- where ciphertexts live ------------------------------------------------------------
    def register(self, column: EncryptedColumn) -> None:
        """Declare a column holding ciphertexts (`Sealed` columns of mapped tables are found
        automatically; use this for tables defined outside `Base.metadata`)."""
        self._columns[(column.table, column.column)] = column

    def columns(self, purpose: Purpose | None = None) -> list[EncryptedColumn]:
        from rampart.vault.columns import discover_sealed_columns

        found = dict(self._columns)
        for item in discover_sealed_columns():
            found.setdefault((item.table, item.column), item)
        return sorted(
            (c for c in found.values() if purpose is None or c.purpose == purpose),
            key=lambda c: (c.table, c.column),
        )

    # --- keys ------------------------------------------------------------------------------
    def _current_key(self, session: Session, family: str) -> tuple[int, bytes]:
        version = self._cache.get(("current", family))
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
                self._cache.put(("current", family), version)
        return version, self._data_key(session, family, version)

    def _pending(self, session: Session, family: str, version: int) -> bool:
        pending: set[tuple[str, int]] = session.info.get("rampart.vault.pending", set())
        return (family, version) in pending

    def _new_data_key_row(self, session: Session, family: str, version: int) -> DataKeyRow:
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
                row = self._new_data_key_row(session, family, 1)
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

    def _data_key(self, session: Session, family: str, version: int) -> bytes:
        cached = self._cache.get(("key", family, version))
        if cached is not None:
            return bytes(cached)
        row = session.scalar(
            select(DataKeyRow).where(DataKeyRow.family == family, DataKeyRow.version == version)
        )
        if row is None or row.wrapped_key is None or row.kek_id is None:
            raise UnreadableError()
        key = self._provider.unwrap(row.kek_id, row.wrapped_key, data_key_context(family, version))
        if not self._pending(session, family, version):
            self._cache.put(("key", family, version), key)
        return key

    def _user_key_for_seal(
        self, session: Session, purpose: Purpose, version: int, purpose_key: bytes, user_id: str
    ) -> tuple[bytes, bytes]:
        cached = self._cache.get(("user", purpose.value, version, user_id))
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
            self._cache.put(("user", purpose.value, version, user_id), (key_id, key))
        return key_id, key

    def _create_user_key(
        self, session: Session, purpose: Purpose, version: int, purpose_key: bytes, user_id: str
    ) -> tuple[UserKeyRow, bool]:
        from rampart.vault.domain import aead_wrap

        _lock_user_keys(session, user_id, exclusive=False)
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
        from rampart.vault.domain import aead_unwrap

        if row.wrapped_key is None:
            raise ShreddedError()
        context = user_key_context(
            Purpose(row.purpose), row.key_version, row.user_id, bytes.fromhex(row.id)
        )
        return aead_unwrap(purpose_key, row.wrapped_key, context)

    def _key_for_open(self, session: Session, header: Header, user_id: str | None) -> bytes:
        if header.user_key_id is None:
            if user_id is not None:
                # Sealed without a user key but opened as a user's: not what was stored.
                raise UnreadableError()
            return self._data_key(session, header.purpose.value, header.key_version)
        if user_id is None:
            raise UnreadableError()
        key_hex = header.user_key_id.hex()
        cached = self._cache.get(("user-id", key_hex))
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
        purpose_key = self._data_key(session, row.purpose, row.key_version)
        key = self._unwrap_user_key(row, purpose_key)
        if row not in session.new:
            self._cache.put(("user-id", key_hex), (row.user_id, key))
        return key

    # --- rotation --------------------------------------------------------------------------
    def rotate(self, db: SessionLike, purpose: Purpose | None = None) -> list[tuple[str, int]]:
        """Start a new data-key version for `purpose` (or every purpose). New writes use it as
        soon as the transaction commits; older versions keep opening until re-encrypted."""
        session = _session(db)
        # Locks in (family, version) order, the order rewrap_all takes them too: no deadlock.
        purposes = (
            [Purpose(purpose)] if purpose is not None else sorted(Purpose, key=lambda p: p.value)
        )
        created: list[tuple[str, int]] = []
        now = self._clock.now()
        for item in purposes:
            current = session.scalar(
                select(DataKeyRow)
                .where(DataKeyRow.family == item.value)
                .order_by(DataKeyRow.version.desc())
                .limit(1)
                .with_for_update()
            )
            version = 1 if current is None else current.version + 1
            if current is not None and current.superseded_at is None:
                current.superseded_at = now
            session.add(self._new_data_key_row(session, item.value, version))
            created.append((item.value, version))
            log.info("vault.key.rotated", family=item.value, version=version)
            _audit(db, "vault.key.rotated", f"key:{item.value}:{version}")
        session.flush()
        families = {family for family, _ in created}
        _after_commit(
            session,
            lambda: self._cache.evict(lambda k, _v: k[0] == "current" and k[1] in families),
        )
        return created

    def rotate_due(self, db: SessionLike) -> list[tuple[str, int]]:
        """Rotate every purpose whose current key is older than `rotation_days`."""
        session = _session(db)
        cutoff = self._clock.now() - timedelta(days=self._settings.rotation_days)
        due: list[Purpose] = []
        for item in Purpose:
            current = session.scalar(
                select(DataKeyRow)
                .where(DataKeyRow.family == item.value, DataKeyRow.destroyed_at.is_(None))
                .order_by(DataKeyRow.version.desc())
                .limit(1)
            )
            if current is not None and current.created_at <= cutoff:
                due.append(item)
        created: list[tuple[str, int]] = []
        for item in due:
            created += self.rotate(session, item)
        return created

    def current_version(self, db: SessionLike, purpose: Purpose) -> int:
        session = _session(db)
        version = session.scalar(
            select(func.max(DataKeyRow.version)).where(
                DataKeyRow.family == Purpose(purpose).value, DataKeyRow.destroyed_at.is_(None)
            )
        )
        return int(version or 0)

    def reencrypt_batch(
        self,
        db: SessionLike,
        target: EncryptedColumn,
        *,
        after_id: str | None = None,
        limit: int | None = None,
    ) -> BatchResult:
        """Re-seal up to `limit` ciphertexts of `target` that are not on the current version.

        Rows are taken in id order after `after_id`, so a pass always moves forward; each row is
        written back only if it still holds the value read (`WHERE col = old`), so a concurrent
        update by the service wins and is never overwritten with older data.
        """
        session = _session(db)
        limit = limit or self._settings.reencrypt_batch
        current = self.current_version(session, target.purpose)
        result = BatchResult(last_id=after_id)
        if current == 0:
            return result
        tbl = sql_table(target.table, sql_column(target.id_column), sql_column(target.column))
        id_col, value_col = tbl.c[target.id_column], tbl.c[target.column]
        query = (
            select(id_col, value_col)
            .where(
                value_col.is_not(None),
                func.substr(value_col, SQL_PURPOSE_AT, 2) == purpose_bytes(target.purpose),
                func.substr(value_col, SQL_VERSION_AT, 4) != version_bytes(current),
            )
            .order_by(id_col)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(id_col > after_id)
        for row_id, value in session.execute(query).all():
            result.scanned += 1
            result.last_id = str(row_id)
            blob = bytes(value)
            context = SealContext(target.table, target.column, str(row_id))
            try:
                header = parse_header(blob)
                owner = self._owner_of(session, header)
                plaintext = self.open(session, target.purpose, blob, context, user_id=owner)
                fresh = self.seal(session, target.purpose, plaintext, context, user_id=owner)
            except ShreddedError:
                result.shredded += 1
                continue
            except UnreadableError:
                result.unreadable += 1
                log.warning(
                    "vault.reencrypt.unreadable",
                    table=target.table,
                    column=target.column,
                    row_id=str(row_id),
                )
                continue
            done = session.execute(
                update(tbl)
                .where(id_col == row_id, value_col == blob)
                .values({target.column: fresh})
            )
            if getattr(done, "rowcount", 0) == 1:
                result.reencrypted += 1
            else:
                result.skipped += 1
        return result

    def _owner_of(self, session: Session, header: Header) -> str | None:
        if header.user_key_id is None:
            return None
        row = session.get(UserKeyRow, header.user_key_id.hex())
        if row is None:
            raise UnreadableError()
        if row.wrapped_key is None:
            raise ShreddedError()
        return row.user_id

    def count_by_version(self, db: SessionLike, purpose: Purpose) -> dict[int, int]:
        """How many stored ciphertexts each key version of `purpose` protects."""
        session = _session(db)
        counts: dict[int, int] = {}
        for target in self.columns(purpose):
            tbl = sql_table(target.table, sql_column(target.column))
            value_col = tbl.c[target.column]
            version_expr = func.substr(value_col, SQL_VERSION_AT, 4)
            rows = session.execute(
                select(version_expr, func.count())
                .where(
                    value_col.is_not(None),
                    func.substr(value_col, SQL_PURPOSE_AT, 2) == purpose_bytes(target.purpose),
                )
                .group_by(version_expr)
            ).all()
            for raw, count in rows:
                version = int.from_bytes(bytes(raw), "big")
                counts[version] = counts.get(version, 0) + int(count)
        return counts

    def _live_ciphertexts_on(self, session: Session, purpose: Purpose, version: int) -> int:
        """Ciphertexts on `version` that could still be opened (shredded ones do not count)."""
        live = 0
        for target in self.columns(purpose):
            tbl = sql_table(target.table, sql_column(target.column))
            value_col = tbl.c[target.column]
            values = session.scalars(
                select(value_col).where(
                    value_col.is_not(None),
                    func.substr(value_col, SQL_PURPOSE_AT, 2) == purpose_bytes(purpose),
                    func.substr(value_col, SQL_VERSION_AT, 4) == version_bytes(version),
                )
            )
            for value in values:
                try:
                    self._owner_of(session, parse_header(bytes(value)))
                except ShreddedError:
                    continue
                except UnreadableError:
                    pass
                live += 1
        return live

    def destroy_version(self, db: SessionLike, purpose: Purpose, version: int) -> None:
        """Destroy a retired data-key version (and the user keys it wraps).

        Refused while any readable ciphertext still uses it, while it is the current version,
        and until `destroy_grace_minutes` after it was superseded: a process that cached it as
        current may still be writing with it for up to `key_cache_seconds`, and a transaction
        that began before the rotation may not have committed yet.
        """
        session = _session(db)
        purpose = Purpose(purpose)
        row = session.scalar(
            select(DataKeyRow)
            .where(DataKeyRow.family == purpose.value, DataKeyRow.version == version)
            .with_for_update()
        )
        if row is None:
            raise KeyStateError("no such key version")
        if row.destroyed_at is not None:
            return
        if row.superseded_at is None:
            raise KeyStateError("the current key version cannot be destroyed; rotate first")
        grace = timedelta(minutes=self._settings.destroy_grace_minutes)
        if self._clock.now() < row.superseded_at + grace:
            raise KeyStateError("the version was superseded too recently to be destroyed")
        live = self._live_ciphertexts_on(session, purpose, version)
        if live:
            raise KeyStateError(f"{live} ciphertexts still use this version; re-encrypt first")
        now = self._clock.now()
        row.wrapped_key = None
        row.destroyed_at = now
        destroyed_user_keys: list[str] = []
        for user_key in session.scalars(
            select(UserKeyRow).where(
                UserKeyRow.purpose == purpose.value, UserKeyRow.key_version == version
            )
        ):
            user_key.wrapped_key = None
            user_key.destroyed_at = user_key.destroyed_at or now
            destroyed_user_keys.append(user_key.id)
        session.flush()

        doomed_user_keys = {("user-id", key_id) for key_id in destroyed_user_keys}

        def forget() -> None:
            self._cache.evict(
                lambda k, _v: (purpose.value in k and version in k) or k in doomed_user_keys
            )

        # Now, and again after commit: a reader between the two may have cached the key anew
        # from the rows that were still committed.
        forget()
        _after_commit(session, forget)
        log.info("vault.key.destroyed", family=purpose.value, version=version)
        _audit(db, "vault.key.destroyed", f"key:{purpose.value}:{version}")

    def rewrap_all(self, db: SessionLike) -> int:
        """Re-wrap every data key under the provider's current KEK (`rampart keys rotate-kek`).

        Only the wrapped keys change; no ciphertext is touched. Returns how many were re-wrapped.
        """
        session = _session(db)
        moved = 0
        for row in session.scalars(
            select(DataKeyRow)
            .where(DataKeyRow.wrapped_key.is_not(None), DataKeyRow.kek_id.is_not(None))
            .order_by(DataKeyRow.family, DataKeyRow.version)
            .with_for_update()
        ):
            if row.kek_id == self._provider.kek_id or row.wrapped_key is None:
                continue
            context = data_key_context(row.family, row.version)
            assert row.kek_id is not None
            key = self._provider.unwrap(row.kek_id, row.wrapped_key, context)
            row.wrapped_key = self._provider.wrap(key, context)
            row.kek_id = self._provider.kek_id
            moved += 1
        session.flush()
        log.info("vault.kek.rewrapped", keys=moved, kek_id=self._provider.kek_id)
        _audit(db, "vault.kek.rewrapped", f"kek:{self._provider.kek_id}", keys=moved)
        return moved

    def status(self, db: SessionLike) -> list[KeyVersionStatus]:
        """Every key version: state, age, wrapping KEK and how many ciphertexts it protects."""
        session = _session(db)
        now = self._clock.now()
        counts = {p.value: self.count_by_version(session, p) for p in Purpose}
        current: dict[str, int] = {}
        rows = list(
            session.scalars(select(DataKeyRow).order_by(DataKeyRow.family, DataKeyRow.version))
        )
        for row in rows:
            if row.destroyed_at is None:
                current[row.family] = max(current.get(row.family, 0), row.version)
        out: list[KeyVersionStatus] = []
        for row in rows:
            if row.destroyed_at is not None:
                state = "destroyed"
            elif current.get(row.family) == row.version:
                state = "current"
            else:
                state = "retired"
            family_counts = counts.get(row.family)
            out.append(
                KeyVersionStatus(
                    family=row.family,
                    version=row.version,
                    state=state,
                    created_at=row.created_at,
                    age_days=(now - row.created_at).total_seconds() / 86400,
                    kek_id=row.kek_id,
                    ciphertexts=None
                    if family_counts is None
                    else family_counts.get(row.version, 0),
                )
            )
        return out

    # --- crypto-shredding ------------------------------------------------------------------
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
        session = _session(db)
        for before in list(self._shredding_listeners):
            before(db, user_id)
        now = self._clock.now()
        destroyed = 0
        # Before the SELECT: it must see every key whose creator we waited for.
        _lock_user_keys(session, user_id, exclusive=True)
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
        self._forget_user(user_id)
        listeners = list(self._shred_listeners)

        def notify() -> None:
            self._forget_user(user_id)
            for listener in listeners:
                listener(user_id)

        _after_commit(session, notify)
        log.info("vault.user.shredded", keys=destroyed)
        _audit(db, "vault.user.shredded", f"user:{user_id}", keys=destroyed)
        return destroyed

    def apply_shreds(self, db: SessionLike, user_ids: Iterable[str]) -> int:
        """Shred each of `user_ids` again (after restoring a backup taken before they were)."""
        total = 0
        for user_id in user_ids:
            total += self.shred_user(db, user_id)
        return total

    def is_shredded(self, db: SessionLike, user_id: str) -> bool:
        return _session(db).get(ShreddedUserRow, user_id) is not None

    def _forget_user(self, user_id: str) -> None:
        self._cache.evict(
            lambda k, v: (
                (k[0] == "user" and k[-1] == user_id) or (k[0] == "user-id" and v[0] == user_id)
            )
        )

    def forget_cached_keys(self) -> None:
        """Drop every unwrapped key from memory (tests, and after a KEK rotation)."""
        self._cache.evict(lambda _k, _v: True)

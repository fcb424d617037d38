"""Key rotation: new data-key versions, re-encryption onto them, destruction of old ones, KEK
re-wrapping, and the status report of every version (`rampart keys ...`).

A rotation only starts a version: new writes use it once the transaction commits and older
versions keep opening until the re-encryption job (`rampart.vault.jobs`) has moved their
ciphertexts; only then may a retired version be destroyed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import column as sql_column
from sqlalchemy import func, select, update
from sqlalchemy import table as sql_table
from sqlalchemy.orm import Session

from rampart.config import VaultSettings
from rampart.kernel.clock import Clock
from rampart.platform.logging import get_logger
from rampart.vault.columns import ColumnRegistry, EncryptedColumn
from rampart.vault.db import DataKeyRow, UserKeyRow
from rampart.vault.domain import (
    SQL_PURPOSE_AT,
    SQL_VERSION_AT,
    KeyStateError,
    Purpose,
    SealContext,
    ShreddedError,
    UnreadableError,
    data_key_context,
    parse_header,
    purpose_bytes,
    version_bytes,
)
from rampart.vault.keys import KeyRing, SessionLike, after_commit, audit_key_event, session_of
from rampart.vault.providers import KeyProvider
from rampart.vault.sealing import EnvelopeSealer

log = get_logger("rampart.vault")


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


class KeyRotation:
    """Rotate, re-encrypt, destroy and re-wrap data keys."""

    def __init__(
        self,
        keys: KeyRing,
        sealer: EnvelopeSealer,
        columns: ColumnRegistry,
        provider: KeyProvider,
        clock: Clock,
        settings: VaultSettings,
    ) -> None:
        self._keys = keys
        self._sealer = sealer
        self._columns = columns
        self._provider = provider
        self._clock = clock
        self._settings = settings

    def rotate(self, db: SessionLike, purpose: Purpose | None = None) -> list[tuple[str, int]]:
        """Start a new data-key version for `purpose` (or every purpose). New writes use it as
        soon as the transaction commits; older versions keep opening until re-encrypted."""
        session = session_of(db)
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
            session.add(self._keys.new_data_key_row(session, item.value, version))
            created.append((item.value, version))
            log.info("vault.key.rotated", family=item.value, version=version)
            audit_key_event(db, "vault.key.rotated", f"key:{item.value}:{version}")
        session.flush()
        families = {family for family, _ in created}
        after_commit(
            session,
            lambda: self._keys.forget(lambda k, _v: k[0] == "current" and k[1] in families),
        )
        return created

    def rotate_due(self, db: SessionLike) -> list[tuple[str, int]]:
        """Rotate every purpose whose current key is older than `rotation_days`."""
        session = session_of(db)
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
        session = session_of(db)
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
        session = session_of(db)
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
                owner = self._keys.owner_of(session, header)
                sealer, purpose = self._sealer, target.purpose
                plaintext = sealer.open(session, purpose, blob, context, user_id=owner)
                fresh = sealer.seal(session, purpose, plaintext, context, user_id=owner)
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

    def count_by_version(self, db: SessionLike, purpose: Purpose) -> dict[int, int]:
        """How many stored ciphertexts each key version of `purpose` protects."""
        session = session_of(db)
        counts: dict[int, int] = {}
        for target in self._columns.columns(purpose):
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
        for target in self._columns.columns(purpose):
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
                    self._keys.owner_of(session, parse_header(bytes(value)))
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
        session = session_of(db)
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
            self._keys.forget(
                lambda k, _v: (purpose.value in k and version in k) or k in doomed_user_keys
            )

        # Now, and again after commit: a reader between the two may have cached the key anew
        # from the rows that were still committed.
        forget()
        after_commit(session, forget)
        log.info("vault.key.destroyed", family=purpose.value, version=version)
        audit_key_event(db, "vault.key.destroyed", f"key:{purpose.value}:{version}")

    def rewrap_all(self, db: SessionLike) -> int:
        """Re-wrap every data key under the provider's current KEK (`rampart keys rotate-kek`).

        Only the wrapped keys change; no ciphertext is touched. Returns how many were re-wrapped.
        """
        session = session_of(db)
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
        audit_key_event(db, "vault.kek.rewrapped", f"kek:{self._provider.kek_id}", keys=moved)
        return moved

    def status(self, db: SessionLike) -> list[KeyVersionStatus]:
        """Every key version: state, age, wrapping KEK and how many ciphertexts it protects."""
        session = session_of(db)
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

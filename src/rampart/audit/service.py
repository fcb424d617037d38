"""Reading the audit log: search, checkpoints, keys, proofs, verification and export.

Reads use read-only sessions; nothing here changes the log. Proofs are built by
`rampart.audit.proofs`; verification and export read the log through `rampart.audit.snapshot`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, func, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnClause

from rampart.audit.batch_check import (
    StoredEntry,
    VerifyReport,
    recheck_exactly,
)
from rampart.audit.checkpoints import (
    CheckpointSink,
    OriginMismatchError,
    log_origin,
    newest_checkpoint,
)
from rampart.audit.db import (
    ACTOR_BLOCK_BITS,
    AuditCheckpointRow,
    AuditEntryRow,
    AuditSigningKeyRow,
)
from rampart.audit.domain import parse_entry
from rampart.audit.export import export_lines, key_record
from rampart.audit.proofs import AuditProofs
from rampart.audit.snapshot import entry_batches, snapshot
from rampart.audit.verify import verify_log
from rampart.audit.writer import load_state
from rampart.kernel.errors import NotFoundError, ValidationError
from rampart.platform.db import Database

_ENTRY = cast(Table, AuditEntryRow.__table__)
_CHECKPOINT = cast(Table, AuditCheckpointRow.__table__)
_KEY = cast(Table, AuditSigningKeyRow.__table__)
#: The leading expression of SQLite's actor index (audit_0003), spelled as the index spells it.
_ACTOR_BLOCK: ColumnClause[int] = literal_column(f"(seq >> {ACTOR_BLOCK_BITS})")
_MAX_BLOCKS_PER_QUERY = 512


@dataclass(frozen=True, slots=True)
class SearchQuery:
    since_ns: int | None = None
    until_ns: int | None = None
    actor: str | None = None
    subject: str | None = None
    action: str | None = None
    #: Keyset cursor: only entries with a larger sequence number.
    after_seq: int | None = None
    limit: int = 100
    #: allowed, denied, ... (unindexed: narrow by another filter on a large log).
    outcome: str | None = None


def entry_view(row: Any) -> dict[str, Any]:
    return view_of(row.seq, bytes(row.entry), bytes(row.leaf_hash))


def view_of(seq: int, entry: bytes, leaf: bytes) -> dict[str, Any]:
    """An entry as the API shows it, from its sequence number, canonical bytes and leaf hash."""
    record = parse_entry(entry)
    return {
        "seq": seq,
        "ts_ns": str(record.ts_ns),
        "actor": record.actor,
        "action": record.action,
        "outcome": record.outcome,
        "subject": record.subject,
        "request_id": record.request_id,
        "client_ip": record.client_ip,
        "details": dict(record.details),
        "leaf_hash": base64.b64encode(leaf).decode(),
    }


class AuditReader:
    """Reads the log. Its `origin` is the log's own (recorded with its signing key) once it has
    one; `origin` given here is the configured one, used before the first checkpoint, and when
    `origin_configured` (an explicit setting) it must agree with the log's."""

    def __init__(
        self, db: Database, *, origin: str, max_page_size: int, origin_configured: bool = False
    ) -> None:
        self._db = db
        self.configured_origin = origin
        self.origin_configured = origin_configured
        self._recorded_origin: str | None = None
        self.max_page_size = max_page_size
        self.proofs = AuditProofs(db)
        self.inclusion = self.proofs.inclusion
        self.consistency = self.proofs.consistency

    # --- search --------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> tuple[list[dict[str, Any]], int | None]:
        """One page of entries matching `query`, oldest first, and the cursor of the next."""
        if not 1 <= query.limit <= self.max_page_size:
            raise ValidationError(f"limit must be between 1 and {self.max_page_size}")
        stmt = select(_ENTRY).order_by(_ENTRY.c.seq).limit(query.limit + 1)
        if query.since_ns is not None:
            stmt = stmt.where(_ENTRY.c.ts_ns >= query.since_ns)
        if query.until_ns is not None:
            stmt = stmt.where(_ENTRY.c.ts_ns < query.until_ns)
        if query.actor is not None:
            stmt = stmt.where(_ENTRY.c.actor == query.actor)
        if query.subject is not None:
            stmt = stmt.where(_ENTRY.c.subject == query.subject)
        if query.action is not None:
            stmt = stmt.where(_ENTRY.c.action == query.action)
        if query.outcome is not None:
            stmt = stmt.where(_ENTRY.c.outcome == query.outcome)
        if query.after_seq is not None:
            stmt = stmt.where(_ENTRY.c.seq > query.after_seq)
        with self._db.read() as session:
            rows: Sequence[Any] = (
                self._by_actor_blocks(session, stmt, query)
                if query.actor is not None and session.get_bind().dialect.name == "sqlite"
                else session.execute(stmt).all()
            )
        page = [entry_view(row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return page, (page[-1]["seq"] if more and page else None)

    @staticmethod
    def _by_actor_blocks(session: Session, stmt: Any, query: SearchQuery) -> list[Any]:
        """SQLite: entries of one actor, through the index on (seq >> ACTOR_BLOCK_BITS, actor,
        ts_ns): one seek per block of sequence numbers, blocks taken in order in growing chunks
        until the page is full, so a page costs seeks over the blocks it spans, not the log."""
        last = session.execute(select(func.max(_ENTRY.c.seq))).scalar()
        if last is None:
            return []
        after = query.after_seq if query.after_seq is not None else -1
        block = max(after + 1, 0) >> ACTOR_BLOCK_BITS
        end = int(last) >> ACTOR_BLOCK_BITS
        wanted = query.limit + 1
        rows: list[Any] = []
        chunk = 16
        while block <= end and len(rows) < wanted:
            blocks = range(block, min(block + chunk, end + 1))
            found = session.execute(
                stmt.where(_ACTOR_BLOCK.in_(blocks)).limit(wanted - len(rows))
            ).all()
            rows.extend(found)
            block = blocks.stop
            chunk = min(chunk * 2, _MAX_BLOCKS_PER_QUERY)
        return rows

    def entry(self, seq: int) -> dict[str, Any]:
        with self._db.read() as session:
            row = session.execute(select(_ENTRY).where(_ENTRY.c.seq == seq)).first()
        if row is None:
            raise NotFoundError("No audit entry has this sequence number.")
        return entry_view(row)

    # --- checkpoints and keys ------------------------------------------------------------
    def checkpoints(self, *, before_size: int | None, limit: int) -> list[dict[str, Any]]:
        limit = max(1, min(limit, self.max_page_size))
        stmt = select(_CHECKPOINT).order_by(_CHECKPOINT.c.size.desc()).limit(limit)
        if before_size is not None:
            stmt = stmt.where(_CHECKPOINT.c.size < before_size)
        with self._db.read() as session:
            rows = session.execute(stmt).all()
        return [self._checkpoint_view(row) for row in rows]

    def latest_checkpoint(self) -> dict[str, Any]:
        with self._db.read() as session:
            newest = newest_checkpoint(session)
        if newest is None:
            raise NotFoundError("No checkpoint has been signed yet.")
        return {
            "size": newest.size,
            "root": base64.b64encode(newest.root).decode(),
            "ts_ns": str(newest.ts_ns),
            "note": newest.note,
        }

    @staticmethod
    def _checkpoint_view(row: Any) -> dict[str, Any]:
        return {
            "size": row.size,
            "root": base64.b64encode(bytes(row.root)).decode(),
            "ts_ns": str(row.ts_ns),
            "key_id": row.key_id,
            "note": row.note,
        }

    def signing_keys(self) -> list[dict[str, Any]]:
        with self._db.read() as session:
            rows = session.execute(select(_KEY).order_by(_KEY.c.valid_from_ns)).all()
        return [
            {
                "name": row.name,
                "key_id": row.key_id,
                "verifier_key": row.verifier_key,
                "public_key": base64.b64encode(bytes(row.public_key)).decode(),
                "algorithm": "Ed25519",
                "valid_from_ns": str(row.valid_from_ns),
                "retired_at_ns": None if row.retired_at_ns is None else str(row.retired_at_ns),
            }
            for row in rows
        ]

    # --- proofs (`proofs`) ------------------------------------------------------------------
    @property
    def proof_rows_read(self) -> int:
        """Rows the last proof read (hashes and leaves): O(log n), for tests and metrics."""
        return self.proofs.rows_read

    # --- whole-log operations (CLI) ------------------------------------------------------
    def stored_entries(
        self, *, columns: bool = True, limit: int | None = None
    ) -> Iterator[StoredEntry]:
        """Every entry in sequence order (one read snapshot), streamed in batches."""
        with self._db.read() as session:
            conn = snapshot(session)
            mode = "columns" if columns else "bare"
            for batch in entry_batches(conn, mode=mode, limit=limit, subtrees=False):
                for row in batch.rows:
                    yield StoredEntry(row[0], row[1], row[2], row[3:] if columns else None)

    def checkpoint_notes(self) -> list[str]:
        with self._db.read() as session:
            return [
                str(n)
                for (n,) in session.execute(select(_CHECKPOINT.c.note).order_by(_CHECKPOINT.c.size))
            ]

    @property
    def origin(self) -> str:
        """The log's origin: recorded with its signing key (read once, it never changes), or the
        configured one before the first checkpoint."""
        if self._recorded_origin is None:
            with self._db.read() as session:
                self._recorded_origin = log_origin(session)
        return self._recorded_origin or self.configured_origin

    def origin_problem(self, recorded: str | None) -> OriginMismatchError | None:
        """The mismatch between an explicit configured origin and the log's, if any."""
        if recorded is None or not self.origin_configured:
            return None
        if recorded == self.configured_origin:
            return None
        return OriginMismatchError(recorded, self.configured_origin)

    def state(self) -> tuple[int, bytes]:
        with self._db.read() as session:
            rng = load_state(session, lock=False)
        return rng.size, rng.root()

    def verify(
        self,
        *,
        sink: CheckpointSink | None,
        trusted_keys: list[tuple[str, bytes]],
        progress: Callable[[int], None] | None = None,
        thorough: bool = False,
    ) -> VerifyReport:
        """Verify the database's log, and against the sink's newest checkpoint when given.

        Entries, subtrees, checkpoints and the tree state are read in one snapshot, so appends
        running meanwhile are simply not part of what is verified. `trusted_keys` (the configured
        signing key, keys given by the auditor) verify the sink's checkpoint: whoever rewrites
        the database can add a key to its table, not to these.

        Every entry's columns are compared with its body (by SQLite's JSON functions on SQLite;
        on PostgreSQL, whose JSON costs more than it saves, in Python without a parse:
        `batch_check.column_suspects`), and the canonical form of entries authenticated by a signed
        root is sampled (see docs/decisions/0014-audit-log.md, Verifying); `thorough` parses every
        entry and checks its form and columns exactly instead.
        """
        sink_note = sink.latest() if sink is not None else None
        with self._db.read() as session:
            conn = snapshot(session)
            keys = [
                (row[0], bytes(row[1]))
                for row in conn.execute(select(_KEY.c.name, _KEY.c.public_key))
            ] + trusted_keys
            rng = load_state(session, lock=False)
            recorded = log_origin(session)
            origin = recorded or self.configured_origin
            notes = [
                str(n)
                for (n,) in conn.execute(select(_CHECKPOINT.c.note).order_by(_CHECKPOINT.c.size))
            ]
            # SQLite's C JSON check costs less than fetching seven more columns per entry into
            # Python (measured); PostgreSQL's JSON costs more, so there Python compares them.
            if thorough:
                mode = "columns"
            elif conn.dialect.name == "sqlite":
                mode = "db-columns"
            else:
                mode = "py-columns"
            report = verify_log(
                batches=entry_batches(conn, mode=mode, limit=None, subtrees=True),
                checkpoint_notes=notes,
                keys=keys,
                origin=origin,
                sink_note=sink_note,
                sink_keys=trusted_keys or keys,
                state=(rng.size, rng.root()),
                progress=progress,
            )
            mismatch = self.origin_problem(recorded)
            if mismatch is not None:
                # The log was checked under its own origin; the settings are what is wrong.
                report.problems.insert(0, mismatch.detail)
            for lo, hi in report.suspect_ranges:
                # A signed root that does not match: name the entries of its range that are not
                # canonical or disagree with their columns (their form was only sampled).
                recheck_exactly(
                    report, entry_batches(conn, mode="columns", limit=hi, subtrees=False, start=lo)
                )
            return report

    def export(self, exported_at_ns: int) -> Iterator[bytes]:
        """The whole log as an export file that `rampart audit verify --export` checks offline."""
        size, _ = self.state()
        with self._db.read() as session:
            key_rows = session.execute(select(_KEY).order_by(_KEY.c.valid_from_ns)).all()
        keys = [
            key_record(row.name, bytes(row.public_key), row.valid_from_ns, row.retired_at_ns)
            for row in key_rows
        ]
        return export_lines(
            self.origin,
            size,
            keys,
            self.checkpoint_notes(),
            self.stored_entries(columns=False, limit=size),
            exported_at_ns,
        )

"""Reading the audit log: search, proofs, checkpoints, keys, verification and export.

Reads use read-only sessions; nothing here changes the log. Proofs are assembled from the stored
perfect-subtree hashes (`audit_subtree`) and a few leaf hashes, O(log n) rows whatever the size of
the log; each is verified against its root before it is served, and comes with the signed
checkpoint of the same size when there is one (whose root must match), so a client checks it
against a root it got signed, not against our word.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, func, literal_column, select, tuple_
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnClause

from rampart.audit.batch_check import (
    BATCH,
    EntryBatch,
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
    SUBTREE_MIN_HEIGHT,
    AuditCheckpointRow,
    AuditEntryRow,
    AuditSigningKeyRow,
    AuditSubtreeRow,
)
from rampart.audit.domain import parse_entry
from rampart.audit.export import export_lines, key_record
from rampart.audit.merkle import (
    consistency_ranges,
    fold_subtrees,
    inclusion_ranges,
    perfect_subtrees,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from rampart.audit.verify import verify_log
from rampart.audit.writer import load_state
from rampart.kernel.errors import ConflictError, NotFoundError, UnavailableError, ValidationError
from rampart.platform.db import Database
from rampart.platform.logging import get_logger

log = get_logger(__name__)

_ENTRY = cast(Table, AuditEntryRow.__table__)
_CHECKPOINT = cast(Table, AuditCheckpointRow.__table__)
_KEY = cast(Table, AuditSigningKeyRow.__table__)
_SUBTREE = cast(Table, AuditSubtreeRow.__table__)
#: The leading expression of SQLite's actor index (audit_0003), spelled as the index spells it.
_ACTOR_BLOCK: ColumnClause[int] = literal_column(f"(seq >> {ACTOR_BLOCK_BITS})")
_MAX_BLOCKS_PER_QUERY = 512
#: What verification reads of each entry: the bytes, the stored leaf hash, the searchable columns
#: (the timestamp as text, as the entry holds it).
_BATCH_COLUMNS = (
    "seq",
    "entry",
    "leaf_hash",
    "CAST(ts_ns AS TEXT)",
    "actor",
    "action",
    "outcome",
    "subject",
    "request_id",
    "client_ip",
)
_SQLITE_TS_TEXT = "CASE WHEN typeof(ts_ns) = 'integer' THEN CAST(ts_ns AS TEXT) END"
#: SQLite compares every entry's searchable columns with its body in C, a chunk per query, and
#: returns only the rows that disagree (with their columns, for the exact check in Python). The
#: body without `details` and `v` must be exactly the JSON object of the columns, in canonical key
#: order: same keys, no duplicates, same values and JSON types (ts as the decimal text of an
#: integer column). A body that is not JSON makes the query fail: that chunk is then checked in
#: Python, column by column. Only constants are interpolated.
_SQLITE_COLUMN_SUSPECTS = (
    "SELECT seq, entry, leaf_hash, "  # noqa: S608
    f"{_SQLITE_TS_TEXT}, {', '.join(_BATCH_COLUMNS[4:])} FROM audit_entry "
    "WHERE seq >= ? AND seq < ? AND NOT ("
    "typeof(ts_ns) = 'integer' AND json_remove(CAST(entry AS TEXT), '$.details', '$.v') IS "
    "json_object('action', action, 'actor', actor, 'client_ip', client_ip, 'outcome', outcome, "
    "'request_id', request_id, 'subject', subject, 'ts', CAST(ts_ns AS TEXT))) ORDER BY seq"
)


class ProofUnavailableError(ConflictError):
    code = "audit-proof-unavailable"
    title = "No proof can be given for these tree sizes"


class AuditIntegrityError(UnavailableError):
    """What the log would prove from disagrees with what it signed: `rampart audit verify`."""

    code = "audit-integrity"
    title = "The audit log failed an integrity check"


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


def entry_view(row: Any) -> dict[str, Any]:
    record = parse_entry(bytes(row.entry))
    return {
        "seq": row.seq,
        "ts_ns": str(record.ts_ns),
        "actor": record.actor,
        "action": record.action,
        "outcome": record.outcome,
        "subject": record.subject,
        "request_id": record.request_id,
        "client_ip": record.client_ip,
        "details": dict(record.details),
        "leaf_hash": base64.b64encode(bytes(row.leaf_hash)).decode(),
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
        #: Rows the last proof read (hashes and leaves): O(log n), for tests and metrics.
        self.proof_rows_read = 0

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

    # --- proofs --------------------------------------------------------------------------
    def _size(self, session: Session, size: int | None) -> int:
        current = load_state(session, lock=False).size
        if size is None:
            newest = newest_checkpoint(session)
            size = newest.size if newest is not None else current
        if not 0 < size <= current:
            raise ProofUnavailableError(f"tree_size must be between 1 and {current}")
        return size

    def _signed(self, session: Session, size: int) -> tuple[str, bytes] | None:
        found = session.execute(
            select(_CHECKPOINT.c.note, _CHECKPOINT.c.root).where(_CHECKPOINT.c.size == size)
        ).first()
        return None if found is None else (str(found.note), bytes(found.root))

    def _nodes(
        self, session: Session, ranges: list[tuple[int, int]]
    ) -> Callable[[int, int], bytes]:
        """MTH of any of `ranges` from O(log n) stored rows: the perfect subtrees they split into
        come from `audit_subtree` (or, below its smallest level, from at most 8 leaf hashes)."""
        pieces = {p for lo, hi in ranges for p in perfect_subtrees(lo, hi)}
        stored = sorted(p for p in pieces if p[0] >= SUBTREE_MIN_HEIGHT)
        hashes: dict[tuple[int, int], bytes] = {}
        reads = 0
        if stored:
            rows = session.execute(
                select(_SUBTREE.c.level, _SUBTREE.c.idx, _SUBTREE.c.hash).where(
                    tuple_(_SUBTREE.c.level, _SUBTREE.c.idx).in_(stored)
                )
            ).all()
            reads += len(rows)
            hashes.update({(row.level, row.idx): bytes(row.hash) for row in rows})
        # Small pieces, and any a log written before the subtree table lacks, from the leaves.
        from_leaves = [p for p in pieces if p not in hashes]
        seqs = sorted({seq for h, i in from_leaves for seq in range(i << h, (i + 1) << h)})
        leaves: dict[int, bytes] = {}
        for start in range(0, len(seqs), 500):
            part = seqs[start : start + 500]
            found = session.execute(
                select(_ENTRY.c.seq, _ENTRY.c.leaf_hash).where(
                    _ENTRY.c.seq >= part[0], _ENTRY.c.seq <= part[-1], _ENTRY.c.seq.in_(part)
                )
            ).all()
            reads += len(found)
            leaves.update({row.seq: bytes(row.leaf_hash) for row in found})
        if len(leaves) != len(seqs):
            raise ProofUnavailableError("the log is missing entries; run `rampart audit verify`")
        for h, i in from_leaves:
            hashes[(h, i)] = root_hash([leaves[seq] for seq in range(i << h, (i + 1) << h)])
        self.proof_rows_read = reads

        def subtree(lo: int, hi: int) -> bytes:
            return fold_subtrees([hashes[p] for p in perfect_subtrees(lo, hi)])

        return subtree

    def _check_root(self, session: Session, size: int, root: bytes) -> str | None:
        """The signed note of `size` if any; refuses when what we would prove from disagrees
        with what was signed (a damaged subtree row must never yield a false proof)."""
        signed = self._signed(session, size)
        if signed is not None and signed[1] != root:
            log.critical("audit proof refused: stored hashes disagree with a signed checkpoint")
            raise AuditIntegrityError("The log's stored hashes disagree with its checkpoint.")
        return None if signed is None else signed[0]

    def inclusion(self, seq: int, tree_size: int | None = None) -> dict[str, Any]:
        """The inclusion proof of entry `seq` in the tree of `tree_size` (default: the newest
        checkpoint's size), from O(log n) stored hashes."""
        with self._db.read() as session:
            size = self._size(session, tree_size)
            if not 0 <= seq < size:
                raise ProofUnavailableError("the entry is not in a tree of this size")
            ranges = inclusion_ranges(seq, size)
            subtree = self._nodes(session, [*ranges, (seq, seq + 1), (0, size)])
            leaf = subtree(seq, seq + 1)
            proof = [subtree(lo, hi) for lo, hi in ranges]
            root = subtree(0, size)
            note = self._check_root(session, size, root)
        if not verify_inclusion(leaf, seq, size, proof, root):
            raise AuditIntegrityError("The log's stored hashes do not form a valid proof.")
        b64 = base64.b64encode
        return {
            "seq": seq,
            "tree_size": size,
            "leaf_hash": b64(leaf).decode(),
            "root": b64(root).decode(),
            "proof": [b64(p).decode() for p in proof],
            "checkpoint": note,
        }

    def consistency(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        """The consistency proof between two tree sizes, from O(log n) stored hashes."""
        with self._db.read() as session:
            size = self._size(session, new_size)
            if not 0 < old_size <= size:
                raise ProofUnavailableError("old_size must satisfy 0 < old_size <= new_size")
            ranges = consistency_ranges(old_size, size)
            subtree = self._nodes(session, [*ranges, (0, old_size), (0, size)])
            proof = [subtree(lo, hi) for lo, hi in ranges]
            old_root, new_root = subtree(0, old_size), subtree(0, size)
            old_note = self._check_root(session, old_size, old_root)
            new_note = self._check_root(session, size, new_root)
        if not verify_consistency(old_size, size, old_root, new_root, proof):
            raise AuditIntegrityError("The log's stored hashes do not form a valid proof.")
        b64 = base64.b64encode
        return {
            "old_size": old_size,
            "new_size": size,
            "old_root": b64(old_root).decode(),
            "new_root": b64(new_root).decode(),
            "proof": [b64(p).decode() for p in proof],
            "old_checkpoint": old_note,
            "new_checkpoint": new_note,
        }

    # --- whole-log operations (CLI) ------------------------------------------------------
    def stored_entries(
        self, *, columns: bool = True, limit: int | None = None
    ) -> Iterator[StoredEntry]:
        """Every entry in sequence order (one read snapshot), streamed in batches."""
        with self._db.read() as session:
            conn = self._snapshot(session)
            mode = "columns" if columns else "bare"
            for batch in self._batches(conn, mode=mode, limit=limit, subtrees=False):
                for row in batch.rows:
                    yield StoredEntry(row[0], row[1], row[2], row[3:] if columns else None)

    @staticmethod
    def _snapshot(session: Session) -> Connection:
        """The session's connection in one consistent snapshot for all the reads to come.

        PostgreSQL: REPEATABLE READ. SQLite: the read transaction itself is a snapshot (WAL).
        """
        if session.get_bind().dialect.name == "postgresql":
            return session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        return session.connection()

    def _batches(
        self,
        conn: Connection,
        *,
        mode: str,
        limit: int | None,
        subtrees: bool,
        start: int = 0,
    ) -> Iterator[EntryBatch]:
        """Entries in batches of `BATCH` (aligned), fetched as plain tuples from the driver.

        `mode`: "bare" (seq, entry, leaf hash), "columns" (and the searchable columns, checked in
        Python with every entry parsed), "py-columns" (the same rows, columns compared with the
        bodies without parsing and the canonical form sampled under signed roots:
        `EntryBatch.sample_form`) or "db-columns" (bare rows; SQLite checks the columns itself and
        sends only the rows that disagree, as `EntryBatch.column_suspects`).
        """
        postgres = conn.dialect.name == "postgresql"
        raw: Any = conn.connection.driver_connection
        mark = "%s" if postgres else "?"
        columns = mode in ("columns", "py-columns")
        fields = _BATCH_COLUMNS if columns else _BATCH_COLUMNS[:3]
        if columns and not postgres:
            # An integer, not another type holding the same digits (an SQLite column takes a
            # blob whatever its type): that would sort after every number and hide the entry
            # from searches by time.
            fields = (*fields[:3], _SQLITE_TS_TEXT, *fields[4:])
        # Only constants are interpolated (column names, the driver's parameter marker).
        query = (
            f"SELECT {', '.join(fields)} FROM audit_entry "  # noqa: S608
            f"WHERE seq >= {mark} AND seq < {mark} ORDER BY seq"
        )
        after = f"SELECT seq FROM audit_entry WHERE seq >= {mark} LIMIT 1"  # noqa: S608
        lo = start
        while limit is None or lo < limit:
            hi = lo + BATCH if limit is None else min(lo + BATCH, limit)
            # PostgreSQL: binary results, no hex text to decode for every bytea.
            cursor = raw.cursor(binary=True) if postgres else raw.cursor()
            try:
                cursor.execute(query, (lo, hi))
                rows = cursor.fetchall()
                if not rows:
                    # A gap is reported by the verifier; past the last entry there is nothing.
                    cursor.execute(after, (hi,))
                    if cursor.fetchone() is None:
                        return
            finally:
                cursor.close()
            nodes = self._stored_subtrees(conn, lo, lo + len(rows)) if subtrees else None
            if mode == "db-columns" and not postgres:
                suspects = self._column_suspects(raw, lo, hi)
                if suspects is None:
                    # Not JSON somewhere in this chunk: check it in Python, column by column.
                    yield next(
                        self._batches(conn, mode="columns", limit=hi, subtrees=subtrees, start=lo)
                    )
                else:
                    yield EntryBatch(rows, False, nodes, suspects)
            else:
                yield EntryBatch(rows, columns, nodes, sample_form=mode == "py-columns")
            lo = hi

    @staticmethod
    def _column_suspects(raw: Any, lo: int, hi: int) -> list[tuple[Any, ...]] | None:
        """The rows in [lo, hi) whose columns SQLite finds differ from their bodies; None when it
        cannot tell (a body that is not JSON, a column of a type JSON cannot hold)."""
        import sqlite3

        cursor = raw.cursor()
        try:
            cursor.execute(_SQLITE_COLUMN_SUSPECTS, (lo, hi))
            return list(cursor.fetchall())
        except sqlite3.Error:
            return None
        finally:
            cursor.close()

    @staticmethod
    def _stored_subtrees(conn: Connection, lo: int, hi: int) -> dict[tuple[int, int], bytes]:
        """The stored subtrees completed by entries [lo, hi): ending in (lo, hi]."""
        ranges = [
            (height, lo >> height, (hi >> height) - 1)
            for height in range(SUBTREE_MIN_HEIGHT, hi.bit_length() + 1)
            if (hi >> height) - 1 >= lo >> height
        ]
        if not ranges:
            return {}
        # Straight from the driver (one level per query, by primary key): ~8,000 rows per batch,
        # where SQLAlchemy's row processing cost more than the rest of the batch's bookkeeping.
        raw: Any = conn.connection.driver_connection
        postgres = conn.dialect.name == "postgresql"
        mark = "%s" if postgres else "?"
        query = (
            "SELECT idx, hash FROM audit_subtree "  # noqa: S608 - constants only
            f"WHERE level = {mark} AND idx >= {mark} AND idx <= {mark}"
        )
        found: dict[tuple[int, int], bytes] = {}
        cursor = raw.cursor(binary=True) if postgres else raw.cursor()
        try:
            for height, first, last in ranges:
                cursor.execute(query, (height, first, last))
                found.update(((height, idx), bytes(node)) for idx, node in cursor.fetchall())
        finally:
            cursor.close()
        return found

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

    def key_pairs(self) -> list[tuple[str, bytes]]:
        with self._db.read() as session:
            rows = session.execute(select(_KEY.c.name, _KEY.c.public_key)).all()
        return [(row.name, bytes(row.public_key)) for row in rows]

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
        root is sampled (see docs/architecture.md, Audit, Verifying); `thorough` parses every
        entry and checks its form and columns exactly instead.
        """
        sink_note = sink.latest() if sink is not None else None
        with self._db.read() as session:
            conn = self._snapshot(session)
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
                batches=self._batches(conn, mode=mode, limit=None, subtrees=True),
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
                    report, self._batches(conn, mode="columns", limit=hi, subtrees=False, start=lo)
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

"""Writing the audit log: sequence numbers, leaf hashes, the tree's right border, its subtrees.

`SqlAuditWriter.write(session, events)` is the `AuditWriter` the unit of work calls at commit: the
entries go into the caller's transaction, so they commit with the business change or not at all.
The order engine calls it once per batch of orders, inside its own group commit.

Sequencing. One row, `audit_tree_state`, holds the tree size and its compact range. A writer
locks it (`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite every write transaction already holds
the database's write lock from `BEGIN IMMEDIATE`), numbers its entries from the size, inserts
them, and stores the new size and border, all in its own transaction. So sequence numbers are
dense, gap-free and in commit order even with several processes on one PostgreSQL: a transaction
that rolls back releases the lock without having used a number.

Cost under the lock. Everything per entry that can be done without a sequence number (validation,
canonical JSON, the leaf hash, the row tuple) is done before the lock by `prepare`, and the
caller's own statements are flushed before it too. Under the lock: one tuple per entry, the
compact range (one hash per entry on average), and one bulk write of plain tuples straight to the
driver (`executemany` on SQLite, `COPY` on PostgreSQL), bypassing ORM objects and SQLAlchemy's
per-row parameter processing, which cost more than the database itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Connection, Table, bindparam, event, select, update
from sqlalchemy.orm import Session

from rampart.audit.db import SUBTREE_MIN_HEIGHT, AuditEntryRow, AuditTreeStateRow
from rampart.audit.domain import new_entry_bytes
from rampart.audit.merkle import CompactRange, leaf_hash
from rampart.kernel.clock import Clock
from rampart.kernel.context import RequestContext, current_context
from rampart.kernel.events import AuditEvent

STATE_ID = 1
_ENTRY = cast(Table, AuditEntryRow.__table__)
_STATE = cast(Table, AuditTreeStateRow.__table__)

#: The order of `PreparedEntry.values`, after the sequence number.
ENTRY_COLUMNS = (
    "seq",
    "ts_ns",
    "actor",
    "action",
    "outcome",
    "subject",
    "request_id",
    "client_ip",
    "entry",
    "leaf_hash",
)
_COLUMN_LIST = ", ".join(ENTRY_COLUMNS)
#: SQLite: rows go in multi-row INSERTs of 2**k rows (k <= _SQLITE_CHUNK_BITS), so a batch of n
#: rows takes at most a handful of statements (one prepared statement per size, cached by the
#: driver). Each statement is one `sqlite3_step`, one release and re-acquisition of the GIL: with
#: a row per step, a writer thread competing with a busy event loop waited for the GIL after
#: every row.
_SQLITE_CHUNK_BITS = 8
_ENTRY_VALUES = f"({', '.join('?' * len(ENTRY_COLUMNS))})"


def _sqlite_insert(table_columns: str, values: str, rows: int) -> str:
    return f"INSERT INTO {table_columns} VALUES {', '.join([values] * rows)}"  # noqa: S608


_SQLITE_INSERT_ENTRIES = {
    1 << k: _sqlite_insert(f"audit_entry ({_COLUMN_LIST})", _ENTRY_VALUES, 1 << k)
    for k in range(_SQLITE_CHUNK_BITS + 1)
}
_SQLITE_INSERT_SUBTREES = {
    1 << k: _sqlite_insert("audit_subtree (level, idx, hash)", "(?, ?, ?)", 1 << k)
    for k in range(_SQLITE_CHUNK_BITS + 1)
}
#: PostgreSQL: binary COPY, so bytea goes as bytes, not hex text to format here and parse there
#: (half the client CPU per row, measured).
_PG_COPY_ENTRIES = f"COPY audit_entry ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
_PG_ENTRY_TYPES = ("int8", "int8", "text", "text", "text", "text", "text", "text", "bytea", "bytea")
_PG_COPY_SUBTREES = "COPY audit_subtree (level, idx, hash) FROM STDIN (FORMAT BINARY)"
_PG_SUBTREE_TYPES = ("int2", "int8", "bytea")


class PreparedEntry(NamedTuple):
    """An entry ready to be sequenced: its canonical bytes, leaf hash and row.

    A tuple, not a frozen dataclass: made once per append on the caller's thread, where a frozen
    dataclass's field-by-field `__init__` cost as much as hashing the entry.
    """

    data: bytes
    leaf: bytes
    #: The `audit_entry` row without its sequence number (`ENTRY_COLUMNS[1:]`).
    values: tuple[Any, ...]


def prepare(event: AuditEvent, ctx: RequestContext, ts_ns: int) -> PreparedEntry:
    """Validate and canonicalise one event; raises `AuditEntryError` for one that cannot be kept."""
    actor = event.actor or ctx.actor
    action, outcome, subject = event.action, event.outcome, event.subject
    request_id, client_ip = ctx.request_id, ctx.client_ip
    data = new_entry_bytes(
        ts_ns, actor, action, outcome, subject, request_id, client_ip, event.details
    )
    leaf = leaf_hash(data)
    return PreparedEntry(
        data,
        leaf,
        (ts_ns, actor, action, outcome, subject, request_id, client_ip, data, leaf),
    )


# Built once: run on every append batch (Core statements on the session's connection; the ORM
# path and building them per batch cost more than running them).
_READ_STATE = select(_STATE.c.size, _STATE.c.border).where(_STATE.c.id == STATE_ID)
_LOCK_STATE = _READ_STATE.with_for_update()
_SAVE_STATE = (
    update(_STATE)
    .where(_STATE.c.id == STATE_ID)
    .values(size=bindparam("new_size"), border=bindparam("new_border"), root=bindparam("new_root"))
)


def load_state(session: Session, *, lock: bool) -> CompactRange:
    """The tree's compact range from the state row (locked when `lock`), rebuilt if missing."""
    query = _LOCK_STATE if lock else _READ_STATE
    conn = session.connection()
    row = conn.execute(query).first()
    if row is None:
        _recreate_state(session)
        row = conn.execute(query).one()
    return CompactRange.unpack(int(row.size), bytes(row.border))


def _recreate_state(session: Session) -> None:
    # The row is gone only if someone emptied the tables (the test harness does, as a replica):
    # rebuild it from the entries, which are the truth, and let a concurrent rebuild win.
    rng = CompactRange()
    for (h,) in session.execute(select(_ENTRY.c.leaf_hash).order_by(_ENTRY.c.seq)):
        rng.append(bytes(h))
    dialect = session.get_bind().dialect.name
    values = {"id": STATE_ID, "size": rng.size, "border": rng.pack(), "root": rng.root()}
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(_STATE).values(values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(_STATE).values(values).on_conflict_do_nothing())


def insert_rows(
    conn: Connection, rows: Sequence[tuple[Any, ...]], subtrees: Sequence[tuple[int, int, bytes]]
) -> None:
    """Bulk-insert entry rows (`ENTRY_COLUMNS`) and subtree rows in the connection's transaction.

    Plain tuples go straight to the driver on the connection SQLAlchemy already holds, so this is
    part of the caller's transaction like any other statement.
    """
    raw: Any = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        with raw.cursor() as cursor:
            with cursor.copy(_PG_COPY_ENTRIES) as copy:
                copy.set_types(_PG_ENTRY_TYPES)
                for row in rows:
                    copy.write_row(row)
            if subtrees:
                with cursor.copy(_PG_COPY_SUBTREES) as copy:
                    copy.set_types(_PG_SUBTREE_TYPES)
                    for node in subtrees:
                        copy.write_row(node)
        return
    cursor = raw.cursor()
    try:
        _sqlite_insert_chunks(cursor, _SQLITE_INSERT_ENTRIES, rows)
        if subtrees:
            _sqlite_insert_chunks(cursor, _SQLITE_INSERT_SUBTREES, subtrees)
    finally:
        cursor.close()


def _sqlite_insert_chunks(
    cursor: Any, statements: dict[int, str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert `rows` with the multi-row statements of `statements`, largest chunks first."""
    largest = 1 << _SQLITE_CHUNK_BITS
    i, n = 0, len(rows)
    while i < n:
        size = min(largest, 1 << ((n - i).bit_length() - 1))
        chunk = rows[i : i + size]
        cursor.execute(statements[size], [value for row in chunk for value in row])
        i += size


class SqlAuditWriter:
    """The `AuditWriter` of the unit of work, and the sequencer behind `AuditLog`."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        #: Called after each commit that appended entries, with the new tree size.
        self.listeners: list[Callable[[int], None]] = []

    def write(self, session: Session, events: list[AuditEvent]) -> None:
        """Append `events` in the session's transaction (called by `UnitOfWork.commit`)."""
        ctx = current_context()
        now = self._clock.time_ns()
        self.write_prepared(session, [prepare(event, ctx, now) for event in events])

    def write_prepared(self, session: Session, entries: Sequence[PreparedEntry]) -> int:
        """Sequence and insert prepared entries; returns the first sequence number given."""
        if not entries:
            raise ValueError("nothing to append")
        # The caller's own statements go out before the lock, not while every writer waits.
        session.flush()
        rng = load_state(session, lock=True)
        first = rng.size
        rows = [(seq, *entry.values) for seq, entry in enumerate(entries, first)]
        subtrees = rng.extend_recording([entry.leaf for entry in entries], SUBTREE_MIN_HEIGHT)
        conn = session.connection()
        insert_rows(conn, rows, subtrees)
        conn.execute(
            _SAVE_STATE, {"new_size": rng.size, "new_border": rng.pack(), "new_root": rng.root()}
        )
        if self.listeners:
            size = rng.size

            def _committed(_session: Session) -> None:
                for listener in self.listeners:
                    listener(size)

            event.listen(session, "after_commit", _committed, once=True)
        return first

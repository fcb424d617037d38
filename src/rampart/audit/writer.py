"""Writing the audit log: sequence numbers, leaf hashes and the tree's right border.

`SqlAuditWriter.write(session, events)` is the `AuditWriter` the unit of work calls at commit: the
entries go into the caller's transaction, so they commit with the business change or not at all.

Sequencing. One row, `audit_tree_state`, holds the tree size and its compact range. A writer
locks it (`SELECT ... FOR UPDATE` on PostgreSQL; on SQLite every write transaction already holds
the database's write lock from `BEGIN IMMEDIATE`), numbers its entries from the size, inserts
them, and stores the new size and border, all in its own transaction. So sequence numbers are
dense, gap-free and in commit order even with several processes on one PostgreSQL: a transaction
that rolls back releases the lock without having used a number. The expensive work (canonical
JSON, leaf hashes) happens before the lock is taken, and the business statements are flushed
before it too, so the lock is held for one insert, one update and the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, event, insert, select, update
from sqlalchemy.orm import Session

from rampart.audit.db import AuditEntryRow, AuditTreeStateRow
from rampart.audit.domain import EntryRecord, entry_bytes, make_record
from rampart.audit.merkle import CompactRange, leaf_hash
from rampart.kernel.clock import Clock
from rampart.kernel.context import RequestContext, current_context
from rampart.kernel.events import AuditEvent

STATE_ID = 1
_ENTRY = cast(Table, AuditEntryRow.__table__)
_STATE = cast(Table, AuditTreeStateRow.__table__)


@dataclass(frozen=True, slots=True)
class PreparedEntry:
    """An entry ready to be sequenced: its values, canonical bytes and leaf hash."""

    record: EntryRecord
    data: bytes
    leaf: bytes


def prepare(event: AuditEvent, ctx: RequestContext, ts_ns: int) -> PreparedEntry:
    """Validate and canonicalise one event; raises `AuditEntryError` for one that cannot be kept."""
    record = make_record(
        ts_ns=ts_ns,
        actor=event.actor or ctx.actor,
        action=event.action,
        outcome=event.outcome,
        subject=event.subject,
        request_id=ctx.request_id,
        client_ip=ctx.client_ip,
        details=event.details,
    )
    data = entry_bytes(record)
    return PreparedEntry(record, data, leaf_hash(data))


def load_state(session: Session, *, lock: bool) -> CompactRange:
    """The tree's compact range from the state row (locked when `lock`), rebuilt if missing."""
    query = select(_STATE.c.size, _STATE.c.border).where(_STATE.c.id == STATE_ID)
    if lock:
        query = query.with_for_update()
    row = session.execute(query).first()
    if row is None:
        _recreate_state(session)
        row = session.execute(query).one()
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
        rows = []
        for entry in entries:
            record = entry.record
            rows.append(
                {
                    "seq": rng.size,
                    "ts_ns": record.ts_ns,
                    "actor": record.actor,
                    "action": record.action,
                    "outcome": record.outcome,
                    "subject": record.subject,
                    "request_id": record.request_id,
                    "client_ip": record.client_ip,
                    "entry": entry.data,
                    "leaf_hash": entry.leaf,
                }
            )
            rng.append(entry.leaf)
        session.execute(insert(_ENTRY), rows)
        session.execute(
            update(_STATE)
            .where(_STATE.c.id == STATE_ID)
            .values(size=rng.size, border=rng.pack(), root=rng.root())
        )
        if self.listeners:
            size = rng.size

            def _committed(_session: Session) -> None:
                for listener in self.listeners:
                    listener(size)

            event.listen(session, "after_commit", _committed, once=True)
        return first

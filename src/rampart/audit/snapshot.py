"""Reading the whole audit log in one snapshot, in aligned batches straight from the driver (what
verification and export read: millions of rows, where SQLAlchemy's row processing would cost
more than the checks themselves)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from rampart.audit.batch_check import BATCH, EntryBatch
from rampart.audit.db import SUBTREE_MIN_HEIGHT

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


def snapshot(session: Session) -> Connection:
    """The session's connection in one consistent snapshot for all the reads to come.

    PostgreSQL: REPEATABLE READ. SQLite: the read transaction itself is a snapshot (WAL).
    """
    if session.get_bind().dialect.name == "postgresql":
        return session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    return session.connection()


def entry_batches(
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
        nodes = _stored_subtrees(conn, lo, lo + len(rows)) if subtrees else None
        if mode == "db-columns" and not postgres:
            suspects = _column_suspects(raw, lo, hi)
            if suspects is None:
                # Not JSON somewhere in this chunk: check it in Python, column by column.
                yield next(
                    entry_batches(conn, mode="columns", limit=hi, subtrees=subtrees, start=lo)
                )
            else:
                yield EntryBatch(rows, False, nodes, suspects)
        else:
            yield EntryBatch(rows, columns, nodes, sample_form=mode == "py-columns")
        lo = hi


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

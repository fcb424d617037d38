"""Batch writes at driver level: one executemany of prebuilt tuples per statement.

The order engine writes a batch's orders, fills, outbox rows, journal entries, postings, balances
and positions in one transaction. Through SQLAlchemy's Core `execute(stmt, [dicts])` each row
pays for parameter processing and bookkeeping that, in the engine thread, cost more than the
database did; here the statement is built once per dialect and each value is converted by its
column type's own bind processor (`Amount`, `UTCDateTime`, JSON), so the rows stored are the
ones SQLAlchemy would have sent. On PostgreSQL, inserts go by `COPY` (`_pg_copy`), except into a
table whose row-level security binds the connection's role (PostgreSQL refuses `COPY FROM` there:
the service's role in production, see `rampart.access.rls`), which get the executemany.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection

_Processor = Callable[[Any], Any] | None
_STATEMENTS: dict[
    tuple[str, str, tuple[str, ...], tuple[str, ...]], tuple[str, list[_Processor]]
] = {}
_MISSING = object()


def _statement(
    conn: Connection, table: Table, columns: tuple[str, ...], keys: tuple[str, ...]
) -> tuple[str, list[_Processor]]:
    """The SQL and the columns' bind processors, built once per dialect."""
    dialect = conn.dialect
    cache_key = (dialect.name, table.name, columns, keys)
    found = _STATEMENTS.get(cache_key)
    if found is not None:
        return found
    # Only identifiers from the table's own metadata are spliced in (quoted); every value is a
    # bound parameter.
    for name in (*columns, *keys):
        table.c[name]
    quote = dialect.identifier_preparer.quote
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    names = list(columns)
    if not keys:
        sql = (
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in names)}) "  # noqa: S608
            f"VALUES ({', '.join([mark] * len(names))})"
        )
    else:
        assignments = ", ".join(f"{quote(c)} = {mark}" for c in names)
        target = " AND ".join(f"{quote(k)} = {mark}" for k in keys)
        sql = f"UPDATE {quote(table.name)} SET {assignments} WHERE {target}"  # noqa: S608
        names.extend(keys)
    processors: list[_Processor] = [
        table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in names
    ]
    _STATEMENTS[cache_key] = (sql, processors)
    return sql, processors


def executemany(
    conn: Connection,
    table: Table,
    columns: tuple[str, ...],
    rows: Sequence[dict[str, Any]],
    *,
    keys: tuple[str, ...] = (),
) -> None:
    """INSERT `rows` (or, with `keys`, UPDATE `columns` of the rows whose `keys` equal the
    row's) in one driver-level executemany. Each row maps every named column to its value."""
    if not rows:
        return
    sql, processors = _statement(conn, table, columns, keys)
    names = (*columns, *keys)
    # Every row's timestamps are the batch's `now`: each distinct one is converted once per
    # call. Only datetimes are memoised: equal Decimals can differ in exponent, and SQLite
    # stores an amount's text as given.
    converters: list[tuple[int, Callable[[Any], Any], dict[datetime, Any]]] = [
        (i, proc, {}) for i, proc in enumerate(processors) if proc is not None
    ]
    params: list[tuple[Any, ...]] = []
    for row in rows:
        values = [row[c] for c in names]
        for i, proc, seen in converters:
            value = values[i]
            if value is None:
                continue
            if type(value) is datetime:
                converted = seen.get(value, _MISSING)
                if converted is _MISSING:
                    converted = seen[value] = proc(value)
                values[i] = converted
            else:
                values[i] = proc(value)
        params.append(tuple(values))
    if not keys and conn.dialect.name == "postgresql" and not _row_security_binds(conn, table):
        _pg_copy(conn, table, names, params)
    else:
        conn.exec_driver_sql(sql, params)


def _row_security_binds(conn: Connection, table: Table) -> bool:
    """Whether row-level security applies to this connection's role on `table`: asked once per
    pooled connection and table (a role's attributes and a table's policies change only with a
    migration, after which the service restarts)."""
    known: dict[str, bool] = conn.connection.info.setdefault("rampart_row_security", {})
    found = known.get(table.name)
    if found is None:
        found = known[table.name] = bool(
            conn.exec_driver_sql(
                "SELECT row_security_active(%s::regclass)",
                (conn.dialect.identifier_preparer.quote(table.name),),
            ).scalar_one()
        )
    return found


def _pg_copy(
    conn: Connection, table: Table, columns: tuple[str, ...], params: list[tuple[Any, ...]]
) -> None:
    """INSERT by `COPY ... FROM STDIN`: one round trip, rows written by psycopg's C code, where
    its pipelined executemany ran a Python generator per row."""
    quote = conn.dialect.identifier_preparer.quote
    sql = f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(sql) as copy:
        for row in params:
            copy.write_row(row)

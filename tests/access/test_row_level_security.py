"""Least privilege in the database: row-level security on every table that holds one user's
data, and the grants of the service's role (no DDL, an append-only audit log).

The tests connect as a role made with `rampart db grant-app-role`'s statements, as production
serves: the superuser the other tests use is never bound by row-level security.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from rampart.access.grants import APPEND_ONLY_TABLES, app_role_grants
from rampart.access.rls import (
    NOT_USER_OWNED,
    USER_OWNED_TABLES,
    OwnedTable,
    scope_to_user,
    system_by_default,
)
from rampart.platform.migrate import upgrade
from tests.support.services import PG_ADMIN_URL, scratch_postgres

#: PostgreSQL only (row-level security), through its own scratch database and roles.
pytestmark = pytest.mark.storage

ALICE, BOB = "user-alice", "user-bob"
#: Columns that name a user (or the risk domain's account, which is a user).
USER_COLUMNS = ("user_id", "account_id")


@dataclass(frozen=True)
class Scratch:
    owner: Engine
    app: Engine
    role: str


@pytest.fixture(scope="module")
def scratch() -> Iterator[Scratch]:
    role = f"rampart_app_{uuid.uuid4().hex[:8]}"
    try:
        with scratch_postgres("rampart_rls") as url:
            upgrade(url)
            owner = create_engine(url)
            with owner.begin() as conn:
                conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
                for statement in app_role_grants(role):
                    conn.execute(text(statement))
            _seed(owner)
            app = create_engine(
                make_url(url).set(username=role).render_as_string(hide_password=False)
            )
            try:
                yield Scratch(owner=owner, app=app, role=role)
            finally:
                app.dispose()
                owner.dispose()
    finally:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def _value(column: dict[str, Any], seed: str) -> Any:
    kind = column["type"]
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.Integer | sa.Numeric):
        return sum(seed.encode()) % 10_000
    if isinstance(kind, sa.DateTime | sa.Date):
        return datetime(2026, 1, 2, tzinfo=UTC)
    if isinstance(kind, sa.LargeBinary):
        return seed.encode()
    if isinstance(kind, sa.JSON):
        return "{}"  # JSON text: the driver sends it untyped, PostgreSQL reads it as json
    length = getattr(kind, "length", None) or 64
    return seed[:length]


def _row_id(table: str, user: str) -> str:
    return f"{table}:{user}"[-36:]


def _owner_value(entry: OwnedTable, user: str) -> str:
    """What the owner column holds for `user`'s row: the user, or the user's parent row."""
    return user if entry.via is None else _row_id(entry.via[0], user)


def _row(inspector: Any, entry: OwnedTable, user: str, tag: str = "") -> dict[str, Any]:
    keys = set(inspector.get_pk_constraint(entry.table)["constrained_columns"])
    row: dict[str, Any] = {}
    for column in inspector.get_columns(entry.table):
        name = column["name"]
        if name == entry.column:
            row[name] = _owner_value(entry, user)
        elif name in keys and not isinstance(column["type"], sa.Integer):
            length = getattr(column["type"], "length", None) or 36
            row[name] = _row_id(entry.table, user + tag)[-length:]
        elif not column["nullable"] or name in keys:
            row[name] = _value(column, f"{entry.table}-{name}-{user}{tag}")
    return row


def _insert(conn: Any, table: str, row: dict[str, Any]) -> None:
    conn.execute(sa.insert(sa.table(table, *(sa.column(name) for name in row))).values(row))


def _seed(owner: Engine) -> None:
    """One row of each registered table for each of Alice and Bob, inserted by the owner."""
    inspector = inspect(owner)
    with owner.begin() as conn:
        # Foreign keys to unseeded tables (a posting's journal entry) are not what is tested.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for entry in USER_OWNED_TABLES:
            for user in (ALICE, BOB):
                _insert(conn, entry.table, _row(inspector, entry, user))


@contextmanager
def _as_alice(scratch: Scratch) -> Iterator[Session]:
    """A transaction of the service's role narrowed to Alice, as a service narrows it."""
    with Session(scratch.app) as session:
        scope_to_user(session, ALICE)
        yield session
        session.rollback()


def _ids(entries: tuple[OwnedTable, ...]) -> list[str]:
    return [entry.table for entry in entries]


@pytest.mark.parametrize("entry", USER_OWNED_TABLES, ids=_ids(USER_OWNED_TABLES))
def test_a_user_scoped_session_sees_and_writes_only_its_users_rows(
    scratch: Scratch, entry: OwnedTable
) -> None:
    table, column = entry.table, entry.column
    alice, bob = _owner_value(entry, ALICE), _owner_value(entry, BOB)
    with _as_alice(scratch) as session:
        assert session.execute(text(f'SELECT {column} FROM "{table}"')).scalars().all() == [alice]
        # Bob's row cannot be read, changed or removed: it is not there for this session.
        where_bob = text(f'SELECT count(*) FROM "{table}" WHERE {column} = :bob')
        assert session.execute(where_bob, {"bob": bob}).scalar_one() == 0
        update = text(f'UPDATE "{table}" SET {column} = {column} WHERE {column} = :bob')
        assert session.execute(update, {"bob": bob}).rowcount == 0  # type: ignore[attr-defined]
        delete = text(f'DELETE FROM "{table}" WHERE {column} = :bob')
        assert session.execute(delete, {"bob": bob}).rowcount == 0  # type: ignore[attr-defined]
    # Nor can Alice's row be handed to Bob...
    with _as_alice(scratch) as session, pytest.raises(DBAPIError, match="row-level security"):
        session.execute(
            text(f'UPDATE "{table}" SET {column} = :bob WHERE {column} = :alice'),
            {"bob": bob, "alice": alice},
        )
    # ...nor a row written in Bob's name.
    row = _row(inspect(scratch.owner), entry, BOB, tag="-new")
    with _as_alice(scratch) as session, pytest.raises(DBAPIError, match="row-level security"):
        _insert(session, table, row)
    # Alice's own row is hers to write.
    with _as_alice(scratch) as session:
        update = text(f'UPDATE "{table}" SET {column} = {column} WHERE {column} = :alice')
        assert session.execute(update, {"alice": alice}).rowcount == 1  # type: ignore[attr-defined]


def test_the_application_role_sees_nothing_unless_a_scope_is_set(scratch: Scratch) -> None:
    with scratch.app.connect() as conn:
        for entry in USER_OWNED_TABLES:
            assert conn.execute(text(f'SELECT count(*) FROM "{entry.table}"')).scalar_one() == 0


def test_the_services_connections_start_as_system_work_until_narrowed(scratch: Scratch) -> None:
    engine = create_engine(scratch.app.url)
    system_by_default(engine)
    try:
        with Session(engine) as session:
            assert session.execute(text("SELECT count(*) FROM trading_order")).scalar_one() == 2
            scope_to_user(session, BOB)
            owners = session.execute(text("SELECT user_id FROM trading_order")).scalars().all()
            assert owners == [BOB]
            session.commit()
            # The narrowing ended with its transaction: a pooled connection forgets Bob.
            assert session.execute(text("SELECT count(*) FROM trading_order")).scalar_one() == 2
    finally:
        engine.dispose()


def test_every_table_with_a_user_column_is_registered_and_has_its_policy(
    scratch: Scratch,
) -> None:
    inspector = inspect(scratch.owner)
    registered = {entry.table for entry in USER_OWNED_TABLES}
    with_user_column = {
        table
        for table in inspector.get_table_names()
        if any(column["name"] in USER_COLUMNS for column in inspector.get_columns(table))
    }
    forgotten = with_user_column - registered - set(NOT_USER_OWNED)
    assert not forgotten, f"add to rampart.access.rls.USER_OWNED_TABLES: {sorted(forgotten)}"
    with scratch.owner.connect() as conn:
        protected = set(
            conn.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_policy p ON p.polrelid = c.oid "
                    "WHERE c.relrowsecurity AND p.polname = c.relname || '_owner'"
                )
            ).scalars()
        )
    assert registered <= protected, f"no policy on {sorted(registered - protected)}"


def test_a_new_user_table_left_out_of_the_registry_fails_the_check(scratch: Scratch) -> None:
    with scratch.owner.begin() as conn:
        conn.execute(text("CREATE TABLE rls_probe_notes (id text PRIMARY KEY, user_id text)"))
    try:
        with pytest.raises(AssertionError, match="rls_probe_notes"):
            test_every_table_with_a_user_column_is_registered_and_has_its_policy(scratch)
    finally:
        with scratch.owner.begin() as conn:
            conn.execute(text("DROP TABLE rls_probe_notes"))


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
@pytest.mark.parametrize(
    "statement", ["UPDATE {t} SET ts_ns = ts_ns", "DELETE FROM {t}", "TRUNCATE {t}"]
)
def test_the_service_role_cannot_change_or_remove_audit_rows(
    scratch: Scratch, table: str, statement: str
) -> None:
    sql = statement.format(t=f'"{table}"')
    if table != "audit_entry":
        sql = sql.replace(
            "ts_ns = ts_ns", "size = size" if table == "audit_checkpoint" else "hash = hash"
        )
    with scratch.app.connect() as conn, pytest.raises(DBAPIError, match="permission denied"):
        conn.execute(text(sql))


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE rls_probe_ddl (id int)",
        "ALTER TABLE trading_order ADD COLUMN probe int",
        "DROP TABLE trading_order",
        "ALTER TABLE trading_order DISABLE ROW LEVEL SECURITY",
        "DROP POLICY trading_order_owner ON trading_order",
        "INSERT INTO alembic_version VALUES ('probe')",
    ],
)
def test_the_service_role_has_no_ddl(scratch: Scratch, statement: str) -> None:
    with (
        scratch.app.connect() as conn,
        pytest.raises(DBAPIError, match=r"permission denied|must be owner"),
    ):
        conn.execute(text(statement))


def test_the_service_role_owns_nothing_and_bypasses_nothing(scratch: Scratch) -> None:
    with scratch.owner.connect() as conn:
        flags = conn.execute(
            text(
                "SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles "
                "WHERE rolname = :r"
            ),
            {"r": scratch.role},
        ).one()
        owned = conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE tableowner = :r"), {"r": scratch.role}
        ).scalar_one()
    assert tuple(flags) == (False, False, False, False)
    assert owned == 0


def test_batch_inserts_work_under_row_level_security(scratch: Scratch) -> None:
    """PostgreSQL refuses `COPY FROM` where row-level security binds: the order engine's batch
    writes take the INSERT path for the service's role, and are checked like any insert."""
    from rampart.platform.bulk import executemany

    entry = next(e for e in USER_OWNED_TABLES if e.table == "trading_order")
    table = sa.Table(entry.table, sa.MetaData(), autoload_with=scratch.owner)
    inspector = inspect(scratch.owner)
    mine = _row(inspector, entry, ALICE, tag="-batch")
    with _as_alice(scratch) as session:
        conn = session.connection()
        executemany(conn, table, tuple(mine), [mine])
        stored = conn.execute(text("SELECT count(*) FROM trading_order")).scalar_one()
        assert stored == 2
    theirs = _row(inspector, entry, BOB, tag="-batch")
    with _as_alice(scratch) as session, pytest.raises(DBAPIError, match="row-level security"):
        executemany(session.connection(), table, tuple(theirs), [theirs])


def test_grant_app_role_prints_the_statements_and_refuses_an_odd_role_name() -> None:
    from typer.testing import CliRunner

    from rampart.cli import app

    runner = CliRunner()
    printed = runner.invoke(app, ["db", "grant-app-role", "rampart_app"])
    assert printed.exit_code == 0, printed.output
    lines = printed.output.splitlines()
    assert lines == [f"{statement};" for statement in app_role_grants("rampart_app")]
    assert any("REVOKE UPDATE, DELETE ON" in line and "audit_entry" in line for line in lines)
    # A name is spliced into SQL as an identifier: anything but a plain name is refused.
    odd = runner.invoke(app, ["db", "grant-app-role", 'x"; DROP TABLE apikey; --'])
    assert odd.exit_code == 2
    assert "DROP TABLE" not in odd.stdout


def test_grant_app_role_applied_makes_a_role_the_production_preflight_accepts(
    scratch: Scratch,
) -> None:
    from typer.testing import CliRunner

    from rampart.cli import app
    from rampart.platform.preflight import _database_problems

    role = f"rampart_cli_{uuid.uuid4().hex[:8]}"
    owner_url = scratch.owner.url.render_as_string(hide_password=False)
    with scratch.owner.begin() as conn:
        # What an administrator makes: a role that may log in, and no more.
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        applied = CliRunner().invoke(
            app,
            ["db", "grant-app-role", role, "--apply"],
            env={"RAMPART_DATABASE_URL": owner_url, "RAMPART_PROFILE": "dev"},
        )
        assert applied.exit_code == 0, applied.output
        as_role = make_url(owner_url).set(username=role).render_as_string(hide_password=False)
        assert _database_problems(as_role) == []
        engine = create_engine(as_role)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM apikey")).scalar_one() == 0
                with pytest.raises(DBAPIError, match="permission denied"):
                    conn.execute(text("DELETE FROM audit_entry"))
        finally:
            engine.dispose()
    finally:
        with scratch.owner.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def test_a_users_order_reads_run_in_a_transaction_narrowed_to_them(container: Any) -> None:
    """The trading reads (orders, fills, account, positions) narrow their own transaction, so on
    PostgreSQL the policy stands behind each query's owner filter."""
    if not container.db.is_postgres:
        pytest.skip("row-level security is a PostgreSQL feature; SQLite relies on the services")
    from sqlalchemy import event

    alice = "01a251a5-0000-7000-8000-00000000a11c"
    executed: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        executed.append((statement, params))

    event.listen(container.db.engine, "before_cursor_execute", record)
    try:
        reads = {
            "trading_order": lambda: container.orders.list_orders(alice),
            "trading_fill": lambda: container.orders.fills(alice),
            "ledger_position": lambda: container.orders.positions(alice),
        }
        for table, read in reads.items():
            executed.clear()
            read()
            narrowed = [
                i
                for i, (sql, params) in enumerate(executed)
                if "set_config" in sql and alice in str(params)
            ]
            queried = [i for i, (sql, _) in enumerate(executed) if f"FROM {table}" in sql]
            assert queried, (table, executed)
            assert narrowed, (table, executed)
            assert narrowed[0] < queried[0]
    finally:
        event.remove(container.db.engine, "before_cursor_execute", record)

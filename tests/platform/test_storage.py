"""Storage on both databases: exact decimals, UTC timestamps, one transaction per unit of work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

from rampart.bootstrap import Container
from rampart.kernel.events import OutboxMessage
from rampart.platform.base import Amount, UTCDateTime
from rampart.platform.migrate import NotMigratedError, assert_migrated
from rampart.platform.outbox import OutboxRow

scratch = MetaData()
probe = Table(
    "storage_probe",
    scratch,
    Column("id", String(36), primary_key=True),
    Column("amount", Amount()),
    Column("at", UTCDateTime()),
)


@pytest.fixture
def probe_table(container: Container):  # type: ignore[no-untyped-def]
    scratch.create_all(container.db.engine)
    yield probe
    scratch.drop_all(container.db.engine)


AMOUNTS = st.decimals(
    min_value=Decimal("-999999999999.99999999"),
    max_value=Decimal("999999999999.99999999"),
    places=8,
    allow_nan=False,
    allow_infinity=False,
)


def test_amounts_round_trip_exactly(container: Container, probe_table: Table) -> None:
    @settings(max_examples=40, deadline=None)
    @given(amount=AMOUNTS)
    def check(amount: Decimal) -> None:
        with container.db.engine.begin() as conn:
            conn.execute(probe_table.delete())
            conn.execute(insert(probe_table).values(id="a", amount=amount))
            stored = conn.execute(select(probe_table.c.amount)).scalar_one()
        assert stored == amount
        assert isinstance(stored, Decimal)

    check()


def test_a_tenth_stays_a_tenth(container: Container, probe_table: Table) -> None:
    with container.db.engine.begin() as conn:
        for i in range(10):
            conn.execute(insert(probe_table).values(id=str(i), amount=Decimal("0.1")))
        values = conn.execute(select(probe_table.c.amount)).scalars().all()
    assert sum(values, Decimal(0)) == Decimal("1.0")


def test_floats_are_refused_for_amounts(container: Container, probe_table: Table) -> None:
    with pytest.raises(Exception, match="float"), container.db.engine.begin() as conn:
        conn.execute(insert(probe_table).values(id="f", amount=0.1))


def test_timestamps_come_back_as_utc(container: Container, probe_table: Table) -> None:
    new_york = timezone(timedelta(hours=-5))
    local = datetime(2026, 3, 1, 9, 30, 0, 123456, tzinfo=new_york)
    with container.db.engine.begin() as conn:
        conn.execute(insert(probe_table).values(id="t", at=local))
        stored = conn.execute(select(probe_table.c.at)).scalar_one()
    assert stored == local
    assert stored.tzinfo == UTC
    with pytest.raises(Exception, match="naive"), container.db.engine.begin() as conn:
        conn.execute(insert(probe_table).values(id="n", at=datetime(2026, 3, 1)))


def test_outbox_messages_commit_with_the_unit_of_work(container: Container) -> None:
    with container.uow() as uow:
        uow.emit(OutboxMessage("notify.email", {"to": "user:1", "template": "welcome"}))
        uow.commit()
    with container.uow() as uow:
        uow.emit(OutboxMessage("notify.email", {"to": "user:2", "template": "welcome"}))
        # No commit: leaving the block rolls back.
    with container.db.read() as session:
        rows = session.scalars(select(OutboxRow)).all()
    assert [row.payload["to"] for row in rows] == ["user:1"]


def test_an_exception_rolls_the_unit_of_work_back(container: Container) -> None:
    def use_case() -> None:
        with container.uow() as uow:
            uow.emit(OutboxMessage("notify.email", {"to": "user:3"}))
            raise RuntimeError("use case failed")

    with pytest.raises(RuntimeError):
        use_case()
    with container.db.read() as session:
        assert session.scalars(select(OutboxRow)).all() == []


def test_after_commit_callbacks_run_only_after_commit(container: Container) -> None:
    ran: list[str] = []
    with container.uow() as uow:
        uow.after_commit(lambda: ran.append("rolled back"))
    with container.uow() as uow:
        uow.after_commit(lambda: ran.append("committed"))
        uow.commit()
    assert ran == ["committed"]


def test_an_unmigrated_database_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = create_engine(url)
    try:
        with pytest.raises(NotMigratedError):
            assert_migrated(engine, url)
    finally:
        engine.dispose()


def test_the_app_refuses_to_serve_an_unmigrated_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rampart.bootstrap import bootstrap
    from rampart.config import Settings
    from rampart.web.app import create_app

    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    container = bootstrap(settings)
    try:
        with pytest.raises(NotMigratedError):
            create_app(container)
    finally:
        container.close()


def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rampart.platform.db import Database

    db = Database(f"sqlite:///{tmp_path / 'wal.db'}", create=True)
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()


def test_a_postgres_connection_lost_while_idle_is_replaced_before_use(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections are pinged only after sitting idle (a ping per checkout costs a round trip
    per transaction); one that died while idle, as after a server restart, must never reach a
    caller."""
    from sqlalchemy import text

    import rampart.platform.db as db_module

    db = db_module.Database(postgres_url, pool_size=1)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with db.read() as session:
            backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
        with db.read() as session:
            replaced = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert replaced != backend
        # In use a moment ago: no ping, the same connection comes back.
        monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 60.0)
        with db.read() as session:
            assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() == replaced
    finally:
        admin.dispose()
        db.engine.dispose()

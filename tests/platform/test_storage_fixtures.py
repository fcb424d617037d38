"""The harness's promise to every storage test: it starts on an empty, migrated database, with
the sequences of its tables restarted, however the previous test left it."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from tests.support.databases import PostgresEmptier

from rampart.bootstrap import bootstrap
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock


def _counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
        with engine.connect() as conn:
            count = 'SELECT count(*) FROM "{}"'
            return {t: int(conn.execute(text(count.format(t))).scalar_one()) for t in tables}
    finally:
        engine.dispose()


def test_the_emptier_leaves_every_table_empty_and_drawn_sequences_restarted(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE SEQUENCE IF NOT EXISTS harness_probe_seq"))
            conn.execute(text("SELECT nextval('harness_probe_seq')"))
            conn.execute(text("SELECT nextval('harness_probe_seq')"))
        # Audit rows (append-only: their triggers refuse a DELETE), journal rows behind foreign
        # keys, vault keys: what a real use case leaves.
        container = bootstrap(
            Settings(profile="dev", data_dir=tmp_path / "var", database_url=postgres_url),
            clock=FrozenClock(),
        )
        try:
            with container.uow() as uow:
                container.ledger.deposit(uow, "u-1", "5.00")
                uow.commit()
        finally:
            container.close()
        assert _counts(postgres_url)["audit_entry"] > 0
        with PostgresEmptier(postgres_url) as emptier:
            emptier.empty()
        assert not {t: n for t, n in _counts(postgres_url).items() if n}
        with engine.begin() as conn:
            assert conn.execute(text("SELECT nextval('harness_probe_seq')")).scalar_one() == 1
            conn.execute(text("DROP SEQUENCE harness_probe_seq"))
    finally:
        engine.dispose()

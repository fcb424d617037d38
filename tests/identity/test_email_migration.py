"""identity_0002 seals the addresses already stored, on SQLite and PostgreSQL, and leaves none in
clear; without the vault it refuses to touch a database that has accounts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from rampart.bootstrap import bootstrap
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from rampart.platform.migrate import upgrade
from rampart.vault.setup import migration_attributes
from tests.support.services import scratch_postgres

NOW = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


@pytest.fixture
def old_database(db_backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the kind under test, migrated only up to the plaintext schema."""
    if db_backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "identity_0001")
        upgrade(url, "vault_0001")
        yield url
        return
    with scratch_postgres("rampart_email_migration") as url:
        upgrade(url, "identity_0001")
        upgrade(url, "vault_0001")
        yield url


def _insert_old_rows(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for user_id, email, status in (
                ("u-live", "erin.live@example.com", "active"),
                ("u-gone", "frank.gone@example.com", "active"),
                ("u-closed", "closed+u-closed@closed.invalid", "closed"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO identity_user (id, email, password_hash, status, "
                        "created_at, updated_at) VALUES (:id, :email, 'x', :status, :now, :now)"
                    ),
                    {"id": user_id, "email": email, "status": status, "now": NOW},
                )
            conn.execute(
                text(
                    "INSERT INTO identity_email_token (id, user_id, purpose, token_hash, email, "
                    "created_at, expires_at) VALUES ('t-live', 'u-live', 'change-email', 'h1', "
                    "'erin.next@example.com', :now, :now)"
                ),
                {"now": NOW},
            )
            # Frank was shredded before this release: nothing can be sealed for him again.
            conn.execute(
                text(
                    "INSERT INTO vault_shredded_user (user_id, shredded_at) VALUES ('u-gone', :n)"
                ),
                {"n": NOW},
            )
    finally:
        engine.dispose()


def _dump(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return "\n".join(
                str(tuple(row))
                for table in ("identity_user", "identity_email_token")
                for row in conn.execute(text(f"SELECT * FROM {table}"))
            )
    finally:
        engine.dispose()


def test_existing_addresses_are_sealed_and_the_plaintext_column_is_gone(
    old_database: str, tmp_path: Path
) -> None:
    settings = Settings(profile="dev", data_dir=tmp_path / "var", database_url=old_database)
    _insert_old_rows(old_database)

    with pytest.raises(RuntimeError, match="needs the vault"):
        upgrade(old_database)
    upgrade(old_database, attributes=migration_attributes(settings))

    engine = create_engine(old_database)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("identity_user")}
        token_columns = {c["name"] for c in inspect(engine).get_columns("identity_email_token")}
    finally:
        engine.dispose()
    assert "email" not in columns
    assert {"email_sealed", "email_index"} <= columns
    assert "email" not in token_columns
    dump = _dump(old_database)
    for address in ("erin.live@example.com", "frank.gone@example.com", "erin.next@example.com"):
        assert address not in dump

    container = bootstrap(settings, clock=FrozenClock())
    try:
        accounts = container.identity.accounts
        with container.db.read() as session:
            live = accounts.by_email(session, "erin.live@example.com")
            assert live is not None
            assert live.id == "u-live"
            assert accounts.email_of(session, live) == "erin.live@example.com"
            # The shredded person's account is erased as a shred erases one now.
            assert accounts.by_email(session, "frank.gone@example.com") is None
            assert not accounts.is_active(session, "u-gone")
    finally:
        container.close()

"""A table holding vault ciphertexts, for the vault's own tests.

It lives in its own MetaData (not `Base.metadata`) so that no other test sees it, and is
registered with the vault explicitly, as a domain with a Core table would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table

from rampart.bootstrap import Container
from rampart.vault import EncryptedColumn, Purpose, Sealed
from tests.support.services import scratch_postgres

metadata = MetaData()

secret_table = Table(
    "vault_test_secret",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("owner", String(64), nullable=True),
    Column("credential", Sealed(Purpose.BROKER_CREDENTIAL), nullable=True),
    Column("tax_id", Sealed(Purpose.TAX_ID), nullable=True),
    Column("tax_id_index", String(64), nullable=True, index=True),
)


def register(container: Container) -> None:
    vault = container.vault
    vault.register(EncryptedColumn("vault_test_secret", "credential", Purpose.BROKER_CREDENTIAL))
    vault.register(EncryptedColumn("vault_test_secret", "tax_id", Purpose.TAX_ID))


@pytest.fixture
def vault_table(container: Container) -> Iterator[Table]:
    metadata.create_all(container.db.engine)
    register(container)
    try:
        yield secret_table
    finally:
        metadata.drop_all(container.db.engine)


@pytest.fixture
def restore_url(db_backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind, created for the test and dropped afterwards."""
    if db_backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    with scratch_postgres("rampart_restore") as url:
        yield url

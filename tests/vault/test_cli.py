"""`rampart keys ...` and `rampart backup ...` end to end, on the test database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from typer.testing import CliRunner

from rampart import cli
from rampart.bootstrap import Container, bootstrap
from rampart.kernel.clock import FrozenClock
from rampart.kernel.ids import new_id
from rampart.vault import Purpose, SealContext
from rampart.vault import cli as vault_cli
from tests.access.support import new_account
from tests.vault.conftest import register


@pytest.fixture
def run(container: Container, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Invoke the real `rampart` app, its containers built on the test's settings."""

    def factory(database_url: str | None = None, check: bool = True) -> Container:
        # `check` (the database exists and is current) holds for the test database.
        settings = container.settings
        if database_url:
            settings = settings.model_copy(update={"database_url": database_url})
        built = bootstrap(settings, clock=clock)
        register(built)
        return built

    monkeypatch.setattr(vault_cli, "_factory", factory)
    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(cli.app, list(args), env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        return result.output

    invoke.runner = runner  # type: ignore[attr-defined]
    return invoke


def _seed(container: Container, table, count: int) -> None:
    with container.uow() as uow:
        for i in range(count):
            row_id = new_id()
            ctx = SealContext("vault_test_secret", "credential", row_id)
            sealed = container.vault.seal(uow, Purpose.BROKER_CREDENTIAL, f"s{i}", ctx)
            uow.session.execute(insert(table).values(id=row_id, credential=sealed))
        uow.commit()


def test_rotate_reencrypt_status_and_destroy(
    run, container: Container, vault_table, clock: FrozenClock
) -> None:
    _seed(container, vault_table, 5)
    status = run("keys", "status")
    assert "broker-credential" in status
    output = run("keys", "rotate", "--purpose", "broker-credential")
    assert "now version 2" in output
    assert "re-encrypted 5" in output
    status = run("keys", "status")
    assert "retired" in status
    assert "current" in status
    refused = run.runner.invoke(  # type: ignore[attr-defined]
        cli.app, ["keys", "destroy", "-p", "broker-credential", "-v", "1"]
    )
    assert refused.exit_code == 1
    assert "too recently" in refused.output
    clock.advance(timedelta(hours=1))
    assert "destroyed" in run("keys", "destroy", "-p", "broker-credential", "-v", "1")
    assert "destroyed" in run("keys", "status")


def test_shred_needs_confirmation(run, container: Container) -> None:
    user = new_account(container)  # an unknown id is refused (tests/platform/test_cli_errors.py)
    refused = run.runner.invoke(cli.app, ["keys", "shred-user", user])  # type: ignore[attr-defined]
    assert refused.exit_code == 2
    assert "destroyed" in run("keys", "shred-user", user, "--yes")


def test_backup_create_verify_list_restore(
    run, container: Container, vault_table, restore_url: str, tmp_path: Path
) -> None:
    _seed(container, vault_table, 3)
    directory = tmp_path / "backups"
    created = run("backup", "create", "--dir", str(directory), "--keep-days", "30")
    path = Path(created.strip().splitlines()[-1])
    assert path.exists()
    assert "ok:" in run("backup", "verify", str(path))
    assert path.name in run("backup", "list", "--dir", str(directory))
    assert "restored" in run("backup", "restore", str(path), "--database-url", restore_url)
    damaged = tmp_path / "damaged.rbk"
    data = bytearray(path.read_bytes())
    data[-40] ^= 0xFF
    damaged.write_bytes(bytes(data))
    refused = run.runner.invoke(cli.app, ["backup", "verify", str(damaged)])  # type: ignore[attr-defined]
    assert refused.exit_code == 1

"""The log's origin comes from the log's own signing records, not from the shell's settings.

A default origin is derived from the public URL (`<host:port>/audit`); an operator's shell with
another port or URL derives another one. That must not turn an intact log into a tamper alarm,
nor make a restarted server sign under a second name. An explicit origin that disagrees with the
log is a mismatch, said as such.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rampart.audit.checkpoints import OriginMismatchError
from rampart.bootstrap import Container, bootstrap
from rampart.cli import app as cli
from rampart.kernel.clock import FrozenClock
from rampart.vault.backup import create_backup, restore_backup
from tests.audit.test_integrity import behind_the_apps_back, cli_env, fill, runner

LOG_ORIGIN = "127.0.0.1:8000/audit"


def _verify(container: Container, **env: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["audit", "verify"], env={**cli_env(container), **env})
    return result.exit_code, result.output


def _signed_log(container: Container) -> None:
    fill(container, 6)
    signed = container.audit_checkpointer.checkpoint()
    assert signed is not None
    assert signed.note.startswith(LOG_ORIGIN + "\n")


@pytest.mark.parametrize(
    "shell",
    [{"RAMPART_PORT": "9123"}, {"RAMPART_PUBLIC_URL": "https://trade.example.com"}],
    ids=["other-port", "other-public-url"],
)
def test_verify_from_a_shell_with_another_port_or_url_passes(
    container: Container, shell: dict[str, str]
) -> None:
    _signed_log(container)
    code, output = _verify(container, **shell)
    assert code == 0, output
    assert "OK" in output
    assert LOG_ORIGIN in output
    assert "signature" not in output


def test_a_tampered_signature_still_fails_from_another_shell(container: Container) -> None:
    _signed_log(container)
    note = container.audit_checkpointer.sink.latest()
    assert note is not None
    text_part, _, signature_line = note.partition("\n\n")
    name, _, sig = signature_line.strip().rpartition(" ")
    forged_sig = ("B" if sig[0] != "B" else "C") + sig[1:]
    forged = f"{text_part}\n\n{name} {forged_sig}\n"
    behind_the_apps_back(container, f"UPDATE audit_checkpoint SET note = '{forged}' WHERE size = 6")
    code, output = _verify(container, RAMPART_PORT="9123")
    assert code == 1, output
    assert "signature does not verify" in output


def test_an_explicit_origin_that_is_not_the_logs_is_reported_as_a_mismatch(
    container: Container,
) -> None:
    _signed_log(container)
    code, output = _verify(container, RAMPART_AUDIT__ORIGIN="elsewhere.example/audit")
    assert code == 1, output
    assert f"origin mismatch: log says {LOG_ORIGIN}, settings say elsewhere.example/audit" in (
        " ".join(output.split())
    )
    assert "signature does not verify" not in output


def test_a_server_restarted_on_another_port_keeps_signing_under_the_logs_origin(
    container: Container, clock: FrozenClock
) -> None:
    _signed_log(container)
    moved = bootstrap(container.settings.model_copy(update={"port": 9123}), clock=clock)
    try:
        fill(moved, 2, start=6)
        signed = moved.audit_checkpointer.checkpoint()
        assert signed is not None
        assert signed.note.startswith(LOG_ORIGIN + "\n")
        assert moved.audit.origin == LOG_ORIGIN
        assert {k["verifier_key"].split("+")[0] for k in moved.audit.signing_keys()} == {LOG_ORIGIN}
    finally:
        moved.close()
    code, output = _verify(container, RAMPART_PORT="9123")
    assert code == 0, output


def test_a_server_with_a_different_explicit_origin_signs_nothing(
    container: Container, clock: FrozenClock
) -> None:
    _signed_log(container)
    audit = container.settings.audit.model_copy(update={"origin": "elsewhere.example/audit"})
    renamed = bootstrap(container.settings.model_copy(update={"audit": audit}), clock=clock)
    try:
        fill(renamed, 2, start=6)
        with pytest.raises(OriginMismatchError) as refused:
            renamed.audit_checkpointer.checkpoint()
        assert refused.value.detail == (
            f"origin mismatch: log says {LOG_ORIGIN}, settings say elsewhere.example/audit"
        )
    finally:
        renamed.close()


def test_the_documented_check_after_a_backup_restore(
    container: Container, clock: FrozenClock, tmp_path: Path
) -> None:
    """docs/operations.md, "Verifying after a backup restore": the live sink is ahead of the
    restored log by design; the restored log verifies on its own and against the shipped
    checkpoint of its size."""
    if container.db.is_postgres:
        pytest.skip("the procedure is the same on PostgreSQL; a SQLite restore is enough here")
    provider = container.vault.provider
    _signed_log(container)
    backup = create_backup(
        container.settings.effective_database_url, tmp_path / "backups", provider, clock
    )
    fill(container, 4, start=6)
    assert container.audit_checkpointer.checkpoint() is not None  # the live log: 10, shipped
    restored = tmp_path / "restored.db"
    restore_backup(backup.path, f"sqlite:///{restored}", provider)
    env = {**cli_env(container), "RAMPART_DATABASE_URL": f"sqlite:///{restored}"}

    def verify(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["audit", "verify", *args], env=env)
        return result.exit_code, " ".join(result.output.split())

    code, output = verify()
    assert code == 1
    assert "the shipped checkpoint covers 10 entries but the log holds 6" in output
    code, output = verify("--no-sink")
    assert code == 0, output
    sink = container.audit_checkpointer.sink.describe()
    (shipped,) = Path(sink).glob("*/00000000000000000006.checkpoint")
    at_restore = tmp_path / "at-restore" / shipped.parent.name
    at_restore.mkdir(parents=True)
    shutil.copy(shipped, at_restore / shipped.name)
    code, output = verify("--sink", str(tmp_path / "at-restore"))
    assert code == 0, output
    assert "consistent with the shipped checkpoint of size 6" in output

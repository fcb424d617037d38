"""Every `rampart` command on bad input: one line on stderr naming the problem, a non-zero exit,
never a traceback, never a silent success on a typo; no command but `db upgrade` creates a
database."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.access.support import new_account
from tests.trading.support import ACME, seed
from typer.testing import CliRunner

from rampart.bootstrap import Container
from rampart.cli import app
from rampart.kernel.clock import FrozenClock
from rampart.vault.backup import create_backup
from rampart.vault.domain import BackupError

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_inherited_log_handlers() -> Iterator[None]:
    """A command run in-process by an earlier test (`serve`) may have left a log handler on a
    stream that runner has since closed; a real `rampart` process starts without one."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []
    try:
        yield
    finally:
        root.handlers = saved


def run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env={"COLUMNS": "200", **env})
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_refusal(code: int, stdout: str, stderr: str, naming: str) -> None:
    assert code != 0, stdout + stderr
    assert "Traceback" not in stdout + stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert naming in " ".join(lines[0].split()), stderr


def env_for(directory: Path, database_url: str | None = None) -> dict[str, str]:
    env = {"RAMPART_DATA_DIR": str(directory), "RAMPART_PROFILE": "dev"}
    if database_url:
        env["RAMPART_DATABASE_URL"] = database_url
    return env


# --- a database that is missing, unmigrated or unreachable ----------------------------------
#: Every command that opens the configured database, with arguments that would otherwise work.
DATABASE_COMMANDS = [
    ("audit", "verify"),
    ("audit", "export", "-"),
    ("audit", "checkpoint"),
    ("audit", "keys"),
    ("keys", "status"),
    ("keys", "rotate"),
    ("keys", "reencrypt"),
    ("keys", "rotate-kek"),
    ("keys", "destroy", "-p", "broker-credential", "-v", "1"),
    ("keys", "shred-user", "u-1", "--yes"),
    ("backup", "create"),
    ("users", "lock", "--email", "a@example.com", "--reason", "r"),
    ("users", "unlock", "--email", "a@example.com", "--reason", "r"),
    ("users", "rotate-signing-key"),
    ("apikeys", "list", "--user-id", "u-1"),
    ("apikeys", "revoke", "k-1", "--reason", "r"),
    ("apikeys", "flag-old"),
    ("ledger", "deposit", "--user", "u-1", "--amount", "10"),
    ("ledger", "verify"),
    ("trading", "instruments"),
    ("trading", "define", "ACME", "--name", "Acme", "--price", "10"),
    ("trading", "status", "ACME", "halted"),
    ("trading", "expire-day"),
    ("halt", "market", "--as", "u-1", "--reason", "r"),
    ("halt", "symbol", "ACME", "--as", "u-1", "--reason", "r"),
    ("halt", "account", "a-1", "--as", "u-1", "--reason", "r"),
    ("halt", "list"),
    ("halt", "request-resume", "h-1", "--as", "u-1", "--reason", "r"),
    ("halt", "approve-resume", "h-1", "--as", "u-1"),
    ("risk", "limits"),
    ("risk", "set-limit", "max_order_quantity", "7", "--as", "u-1", "--reason", "r"),
    ("risk", "state", "reducing", "--as", "u-1", "--reason", "r"),
    ("risk", "restrict", "ACME", "--as", "u-1", "--reason", "r"),
    ("risk", "locate", "a-1", "ACME", "10", "--as", "u-1", "--source", "desk"),
    ("risk", "events", "--as", "u-1"),
]


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_a_missing_database_is_refused_and_never_created(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    data_dir = tmp_path / "typo" / "var"
    code, out, err = run(env_for(data_dir), *command)
    assert_one_line_refusal(code, out, err, f"database not found at {data_dir / 'rampart.db'}")
    assert "rampart db upgrade" in err
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize(
    "command", [c for c in DATABASE_COMMANDS if c[0] in ("ledger", "audit", "keys")], ids=" ".join
)
def test_an_unmigrated_database_is_refused(command: tuple[str, ...], tmp_path: Path) -> None:
    (tmp_path / "rampart.db").write_bytes(b"")
    code, out, err = run(env_for(tmp_path), *command)
    assert_one_line_refusal(code, out, err, "schema is not current (run `rampart db upgrade`)")


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://rampart:hunter2-secret@127.0.0.1:1/rampart"
    code, out, err = run(env_for(tmp_path, url), "ledger", "verify")
    assert_one_line_refusal(code, out, err, "database unreachable at postgresql")
    assert "hunter2-secret" not in out + err


def test_only_db_upgrade_creates_the_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "var"
    code, out, err = run(env_for(data_dir), "db", "upgrade")
    assert code == 0, out + err
    assert (data_dir / "rampart.db").is_file()


# --- typos, unknown ids and bad numbers on a working database -------------------------------
@pytest.fixture
def working(container: Container) -> dict[str, str]:
    """The CLI's environment on the test database, with an admin and the instrument ACME."""
    seed(container, ACME)
    settings = container.settings
    env = env_for(settings.data_dir, settings.effective_database_url)
    env["ADMIN"] = new_account(container, "ADMIN")
    env["TRADER"] = new_account(container, "TRADER")
    return env


NO_ACCOUNT = "no such account 'acct-typo'"
NO_USER = "no such user (--as) 'admin-typo'"
BAD_INPUT = [
    (
        ("ledger", "deposit", "--user", "no-such-user", "--amount", "10"),
        "no active user has the id",
    ),
    (("ledger", "deposit", "--user", "{TRADER}", "--amount", "abc"), "not a decimal amount"),
    (("ledger", "deposit", "--user", "{TRADER}", "--amount", "-5"), "positive"),
    (("keys", "shred-user", "no-such-user", "--yes"), "no user has the id 'no-such-user'"),
    (("keys", "destroy", "-p", "broker-credential", "-v", "99"), "refused"),
    (
        ("risk", "locate", "{TRADER}", "NOPE", "10", "--as", "{ADMIN}", "--source", "desk"),
        "No instrument 'NOPE'",
    ),
    (
        ("risk", "locate", "{TRADER}", "ACME", "ten", "--as", "{ADMIN}", "--source", "desk"),
        "the quantity is not a number",
    ),
    (("risk", "restrict", "NOPE", "--as", "{ADMIN}", "--reason", "r"), "No instrument 'NOPE'"),
    (("halt", "symbol", "NOPE", "--as", "{ADMIN}", "--reason", "r"), "No instrument 'NOPE'"),
    (("halt", "request-resume", "no-such-halt", "--as", "{ADMIN}", "--reason", "r"), "refused"),
    (
        ("risk", "set-limit", "max_order_quantity", "abc", "--as", "{ADMIN}", "--reason", "r"),
        "refused",
    ),
    (("risk", "set-limit", "no_such_limit", "7", "--as", "{ADMIN}", "--reason", "r"), "refused"),
    (("risk", "state", "paused", "--as", "{ADMIN}", "--reason", "r"), "`active` or `reducing`"),
    # A typo in an account or user id: named as such, never a success nor "permission denied".
    (("halt", "account", "acct-typo", "--as", "{ADMIN}", "--reason", "r"), NO_ACCOUNT),
    (("halt", "market", "--as", "admin-typo", "--reason", "r"), NO_USER),
    (("halt", "symbol", "ACME", "--as", "admin-typo", "--reason", "r"), NO_USER),
    (("halt", "approve-resume", "h-1", "--as", "admin-typo"), NO_USER),
    (("risk", "limits", "--account", "acct-typo"), NO_ACCOUNT),
    (
        (
            "risk",
            "set-limit",
            "max_order_quantity",
            "7",
            "--account",
            "acct-typo",
            "--as",
            "{ADMIN}",
            "--reason",
            "r",
        ),
        NO_ACCOUNT,
    ),
    (
        ("risk", "set-limit", "max_order_quantity", "7", "--as", "admin-typo", "--reason", "r"),
        NO_USER,
    ),
    (
        ("risk", "state", "reducing", "--account", "acct-typo", "--as", "{ADMIN}", "--reason", "r"),
        NO_ACCOUNT,
    ),
    (
        ("risk", "locate", "acct-typo", "ACME", "10", "--as", "{ADMIN}", "--source", "desk"),
        NO_ACCOUNT,
    ),
    (("risk", "events", "--as", "{ADMIN}", "--account", "acct-typo"), NO_ACCOUNT),
    (("risk", "events", "--as", "admin-typo"), NO_USER),
    (("trading", "define", "XYZ", "--name", "X", "--price", "abc"), "--price: not a decimal"),
    (("trading", "define", "XYZ", "--name", "X", "--price", "-1"), "price must be positive"),
    (("trading", "define", "XYZ", "--name", "X", "--price", "1", "--tick", "x"), "--tick:"),
    (("trading", "status", "NOPE", "halted"), "No instrument"),
    (("users", "lock", "--email", "nobody@example.com", "--reason", "r"), "no account has"),
    (
        (
            "users",
            "create",
            "--email",
            "a@example.com",
            "--role",
            "TRADER",
            "--password-file",
            "/no/such/file",
        ),
        "cannot use /no/such/file",
    ),
    (("apikeys", "list", "--user-id", "no-such-user"), "no user has the id 'no-such-user'"),
    (("apikeys", "revoke", "no-such-key", "--reason", "r"), "refused"),
    (("apikeys", "revoke-leaked", "--secret-file", "/no/such/file"), "cannot use /no/such/file"),
    (("backup", "verify", "/no/such/file.rbk"), "cannot read /no/such/file.rbk"),
    (("audit", "verify", "--export", "/no/such/file"), "Cannot read the export"),
    (("audit", "export", "/no/such/dir/log.jsonl"), "cannot use /no/such/dir/log.jsonl"),
]


@pytest.mark.parametrize(
    ("command", "naming"), BAD_INPUT, ids=[" ".join(command)[:60] for command, _ in BAD_INPUT]
)
def test_bad_input_is_refused_in_one_line(
    working: dict[str, str], command: tuple[str, ...], naming: str
) -> None:
    args = [part.format(**working) for part in command]
    code, out, err = run(working, *args)
    assert_one_line_refusal(code, out, err, naming)


def test_a_halt_on_an_unknown_account_records_nothing(working: dict[str, str]) -> None:
    code, out, err = run(working, "halt", "account", "acct-typo", "--as", working["ADMIN"],
                         "--reason", "r")  # fmt: skip
    assert_one_line_refusal(code, out, err, NO_ACCOUNT)
    code, out, _ = run(working, "halt", "list", "--all")
    assert code == 0
    assert "acct-typo" not in out
    # The account meant is halted as before.
    code, out, err = run(working, "halt", "account", working["TRADER"], "--as", working["ADMIN"],
                         "--reason", "r")  # fmt: skip
    assert code == 0, out + err


def test_backup_create_on_a_missing_database_prunes_nothing(
    working: dict[str, str], tmp_path: Path
) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    old = backups / "rampart-20200101T000000Z-sqlite.rbk"
    older = backups / "rampart-20190101T000000Z-sqlite.rbk"
    old.write_bytes(b"x")
    older.write_bytes(b"x")
    env = env_for(tmp_path / "gone")
    code, out, err = run(env, "backup", "create", "--dir", str(backups), "--keep-days", "1")
    assert_one_line_refusal(code, out, err, "database not found")
    assert old.exists()
    assert older.exists()
    assert sorted(p.name for p in backups.iterdir()) == [older.name, old.name]


def test_create_backup_refuses_a_missing_sqlite_file(
    container: Container, tmp_path: Path, clock: FrozenClock
) -> None:
    missing = tmp_path / "nowhere" / "rampart.db"
    with pytest.raises(BackupError, match="database not found"):
        create_backup(f"sqlite:///{missing}", tmp_path / "b", container.vault.provider, clock)
    assert not missing.exists()
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_the_installed_command_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    """The real entry point (`python -m rampart`), not only the in-process runner."""
    env = {**os.environ, **env_for(tmp_path / "missing")}
    env.pop("RAMPART_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "rampart", "ledger", "deposit", "--user", "u", "--amount", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert_one_line_refusal(done.returncode, done.stdout, done.stderr, "database not found at")
    assert not (tmp_path / "missing").exists()

"""`rampart users create` for the first admin and for tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rampart.bootstrap import Container
from rampart.cli import app
from rampart.kernel.clock import FrozenClock
from tests.identity.support import PASSWORD, bearer, latest, login


@pytest.fixture
def cli_env(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAMPART_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("RAMPART_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RAMPART_PROFILE", "dev")


def test_users_create_admin_from_a_password_file(
    cli_env: None, client: TestClient, container: Container, tmp_path: Path
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    result = CliRunner().invoke(
        app,
        [
            "users",
            "create",
            "--email",
            "Root@Example.com",
            "--role",
            "ADMIN",
            "--verified",
            "--password-file",
            str(secret),
        ],
    )
    assert result.exit_code == 0, result.output
    tokens = login(client, "root@example.com")
    me = client.get("/v1/me", headers=bearer(tokens["access_token"])).json()
    assert me["roles"] == ["ADMIN"]
    assert me["email_verified"] is True
    assert "admin:users" in me["permissions"]

    again = CliRunner().invoke(
        app,
        [
            "users",
            "create",
            "--email",
            "root@example.com",
            "--role",
            "ADMIN",
            "--password-file",
            str(secret),
        ],
    )
    assert again.exit_code == 1


def test_users_create_prompts_and_refuses_weak_passwords(
    cli_env: None, container: Container
) -> None:
    weak = CliRunner().invoke(
        app,
        ["users", "create", "--email", "t@example.com", "--role", "TRADER"],
        input="password\npassword\n",
    )
    assert weak.exit_code == 1
    assert "common" in weak.output
    ok = CliRunner().invoke(
        app,
        ["users", "create", "--email", "t@example.com", "--role", "TRADER"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert ok.exit_code == 0, ok.output
    # Not --verified: the confirmation link was sent.
    assert latest(container, "t@example.com", "verify-email")


def test_lock_command_ends_sessions(
    cli_env: None, client: TestClient, container: Container, clock: FrozenClock, tmp_path: Path
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    CliRunner().invoke(
        app,
        [
            "users",
            "create",
            "--email",
            "l@example.com",
            "--role",
            "TRADER",
            "--verified",
            "--password-file",
            str(secret),
        ],
    )
    tokens = login(client, "l@example.com")
    result = CliRunner().invoke(
        app, ["users", "lock", "--email", "l@example.com", "--reason", "test"]
    )
    assert result.exit_code == 0, result.output
    # Another process locked it: this one sees it within the revocation cache bound.
    clock.advance(container.settings.identity.revocation_cache_seconds + 0.1)
    assert client.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 401

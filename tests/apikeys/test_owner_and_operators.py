"""A key works only while its owner's account does; operators list and revoke keys from the
CLI; old keys are flagged by the background sweeper and by `rampart apikeys flag-old`."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rampart.apikeys.jobs import OldKeySweeper
from rampart.bootstrap import Container, bootstrap
from rampart.cli import app as cli
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from rampart.notifications.mailbox import Mailbox
from tests.access.support import ACCOUNT_PASSWORD, email_of, new_account
from tests.apikeys.test_signed_requests import WHOAMI, bot, create_key, problem
from tests.identity.support import bearer


def _owner_token(client: TestClient, container: Container, user: str) -> str:
    response = client.post(
        "/v1/auth/login", json={"email": email_of(container, user), "password": ACCOUNT_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _notices(container: Container, user_email: str, kind: str) -> list[Any]:
    container.outbox_worker.drain()
    box = Mailbox(container.settings.data_dir / "outbox")
    return [m for m in box.messages(to=user_email) if m.kind == kind]


# --- the owner's account ---------------------------------------------------------------------
def test_closing_the_account_stops_its_keys_at_once(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    signer = bot(client, clock, key, secret=key["secret"])
    assert signer.get("/v1/me").status_code == 200

    token = _owner_token(client, container, user)
    closed = client.post("/v1/me/close", headers=bearer(token), json={"password": ACCOUNT_PASSWORD})
    assert closed.status_code == 204, closed.text
    response = signer.get("/v1/me")
    assert (response.status_code, problem(response)) == (401, "apikey-owner-inactive")
    assert signer.get(WHOAMI).status_code == 401


def test_locking_the_account_stops_its_keys_until_unlocked(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["trade", "read"])
    signer = bot(client, clock, key, secret=key["secret"])
    assert signer.get(WHOAMI).status_code == 200
    with container.uow() as uow:
        container.identity.accounts.set_locked(uow, user, True, reason="fraud review")
        uow.commit()
    for path in (WHOAMI, "/v1/me"):
        response = signer.get(path)
        assert (response.status_code, problem(response)) == (401, "apikey-owner-inactive")
    with container.uow() as uow:
        container.identity.accounts.set_locked(uow, user, False, reason="cleared")
        uow.commit()
    assert signer.get(WHOAMI).status_code == 200


def test_a_key_whose_owner_has_no_account_is_refused(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    from rampart.access.domain import Principal
    from rampart.kernel.ids import new_id

    ghost = new_id()
    with container.uow() as uow:
        container.access.assign_role(uow, ghost, "TRADER")
        uow.commit()
    with container.db.read() as session:
        perms = container.access.permissions_of(session, ghost, clock.now())
    with container.uow() as uow:
        created = container.apikeys.create(
            uow,
            Principal(actor=f"user:{ghost}", user_id=ghost, permissions=perms, method="session"),
            algorithm="hmac-sha256",
            scopes=["read"],
        )
        uow.commit()
    assert created.secret is not None
    key = {"key_id": created.key.id}
    response = bot(client, clock, key, secret=created.secret.reveal()).get(WHOAMI)
    assert (response.status_code, problem(response)) == (401, "apikey-owner-inactive")


# --- the background sweeper ------------------------------------------------------------------
def test_the_sweeper_flags_old_keys_and_tells_their_owners(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    clock.advance(timedelta(days=container.settings.apikeys.max_age_days))
    sweeper = OldKeySweeper(container.apikeys, container.uow, interval=0.05, first_delay=0)
    sweeper.start()
    thread = sweeper._thread
    assert thread is not None
    try:
        deadline = time.monotonic() + 20
        while sweeper.passes < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sweeper.stop()
    assert sweeper.passes >= 2
    assert not thread.is_alive()
    notices = _notices(container, email_of(container, user), "apikey-old")
    assert len(notices) == 1  # several passes, one notice
    assert key["key_id"] in notices[0].text


def test_the_app_starts_and_stops_the_sweeper(settings: Settings, clock: FrozenClock) -> None:
    container = bootstrap(settings, clock=clock)
    (sweeper,) = [c for c in container.closers if isinstance(c, OldKeySweeper)]
    assert sweeper.interval == settings.apikeys.old_key_check_seconds > 0
    container.start()
    try:
        assert any(t.name == "rampart-apikeys-old" for t in threading.enumerate())
    finally:
        container.close()
    assert not any(t.name == "rampart-apikeys-old" for t in threading.enumerate())


# --- `rampart apikeys` -----------------------------------------------------------------------
@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAMPART_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("RAMPART_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RAMPART_PROFILE", "dev")


def test_cli_lists_a_users_keys_without_secrets(
    cli_env: None, client: TestClient, container: Container
) -> None:
    user = new_account(container)
    first = create_key(client, user, scopes=["read"], label="reporting")
    second = create_key(client, user, scopes=["trade"], label="market maker")
    result = CliRunner().invoke(
        cli, ["apikeys", "list", "--email", email_of(container, user), "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["id"] for r in rows] == [second["key_id"], first["key_id"]]
    assert rows[1]["label"] == "reporting"
    assert rows[0]["scopes"] == ["trade"]
    for created in (first, second):
        assert created["secret"] not in result.output
        assert created["secret"][9:25] not in result.output
    table = CliRunner().invoke(cli, ["apikeys", "list", "--user-id", user])
    assert table.exit_code == 0
    assert first["key_id"] in table.stdout
    unknown = CliRunner().invoke(cli, ["apikeys", "list", "--email", "nobody@example.com"])
    assert unknown.exit_code == 1


def test_cli_revokes_by_id_and_the_owner_is_told(
    cli_env: None, client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    signer = bot(client, clock, key, secret=key["secret"])
    assert signer.get(WHOAMI).status_code == 200
    result = CliRunner().invoke(
        cli, ["apikeys", "revoke", key["key_id"], "--reason", "customer asked by phone"]
    )
    assert result.exit_code == 0, result.output
    response = signer.get(WHOAMI)
    assert (response.status_code, problem(response)) == (401, "apikey-revoked")
    assert _notices(container, email_of(container, user), "apikey-revoked")
    missing = CliRunner().invoke(cli, ["apikeys", "revoke", "no-such-key", "--reason", "x"])
    assert missing.exit_code == 1


def test_cli_revokes_a_leaked_secret(
    cli_env: None, client: TestClient, container: Container, clock: FrozenClock, tmp_path: Path
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    leaked = tmp_path / "leak.txt"
    leaked.write_text(key["secret"] + "\n")
    result = CliRunner().invoke(cli, ["apikeys", "revoke-leaked", "--secret-file", str(leaked)])
    assert result.exit_code == 0, result.output
    assert key["key_id"] in result.stdout
    assert key["secret"] not in result.output
    response = bot(client, clock, key, secret=key["secret"]).get(WHOAMI)
    assert (response.status_code, problem(response)) == (401, "apikey-revoked")
    notices = _notices(container, email_of(container, user), "apikey-leaked")
    assert len(notices) == 1
    # A mistyped secret is refused by its checksum, before any lookup.
    typo = tmp_path / "typo.txt"
    typo.write_text(key["secret"][:-1] + ("A" if key["secret"][-1] != "A" else "B"))
    refused = CliRunner().invoke(cli, ["apikeys", "revoke-leaked", "--secret-file", str(typo)])
    assert refused.exit_code == 1


class TestFlagOldFromTheCli:
    """The CLI runs on the wall clock; the keys here were made 100 days before it."""

    @pytest.fixture
    def clock(self) -> FrozenClock:
        return FrozenClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=100))

    def test_flags_old_keys_once_and_notifies(
        self, cli_env: None, client: TestClient, container: Container
    ) -> None:
        user = new_account(container)
        key = create_key(client, user, scopes=["read"])
        first = CliRunner().invoke(cli, ["apikeys", "flag-old"])
        assert first.exit_code == 0, first.output
        assert first.stdout.strip().splitlines()[-1] == "1"
        again = CliRunner().invoke(cli, ["apikeys", "flag-old"])
        assert again.stdout.strip().splitlines()[-1] == "0"
        notices = _notices(container, email_of(container, user), "apikey-old")
        assert len(notices) == 1
        assert key["key_id"] in notices[0].text


def test_a_revocation_stamped_by_a_clock_running_ahead_holds_at_once() -> None:
    from rampart.apikeys.domain import KeyDates, KeyState, key_state

    now = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    dates = KeyDates(
        created_at=now - timedelta(days=1),
        expires_at=None,
        revoked_at=now + timedelta(minutes=3),
        grace_until=None,
    )
    assert key_state(dates, now) is KeyState.REVOKED

"""`rampart users create` for the first admin and for tests."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rampart.bootstrap import Container
from rampart.cli import app
from rampart.kernel.clock import FrozenClock
from tests.identity.support import PASSWORD, bearer, latest, login
from tests.mfa.authenticator import SoftAuthenticator
from tests.support.staff import sign_in_with_key

ENROL_LINK = re.compile(r"/staff/enrol\?token=([A-Za-z0-9_-]+)")


@pytest.fixture
def cli_env(settings, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RAMPART_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("RAMPART_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RAMPART_PROFILE", "dev")


def test_users_create_admin_prints_an_enrolment_link_and_no_password_signs_in(
    cli_env: None, client: TestClient, container: Container, tmp_path: Path
) -> None:
    # A staff account gets no password from the operator: the enrolment link sets it, with a key.
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    with_password = CliRunner().invoke(
        app,
        ["users", "create", "--email", "root@example.com", "--role", "ADMIN", "--verified",
         "--password-file", str(secret)],
    )  # fmt: skip
    assert with_password.exit_code == 1
    result = CliRunner().invoke(
        app, ["users", "create", "--email", "Root@Example.com", "--role", "ADMIN", "--verified"]
    )
    assert result.exit_code == 0, result.output
    match = ENROL_LINK.search(result.stdout)
    assert match, result.output
    token = match.group(1)
    # Until enrolment there is no password at all: the account does nothing.
    refused = client.post(
        "/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}
    )
    assert refused.status_code == 401
    assert client.get(f"/staff/enrol?token={token}").status_code == 200

    key = SoftAuthenticator()
    origin = container.mfa.relying_party.origin
    begin = client.post("/v1/auth/staff-enrolment/challenge", json={"token": token}).json()
    enrol = {
        "token": token,
        "password": PASSWORD,
        "challenge_id": begin["challenge_id"],
        "credential": key.register(begin["options"], origin=origin),
    }
    done = client.post("/v1/auth/staff-enrolment", json=enrol)
    assert done.status_code == 201, done.text
    assert len(done.json()["backup_codes"]) == 10
    # Single use: the link is spent, its page says so.
    again = client.post("/v1/auth/staff-enrolment/challenge", json={"token": token})
    assert again.json()["type"] == "urn:rampart:problem:invalid-link"
    assert client.get(f"/staff/enrol?token={token}").status_code == 404

    # The password alone now opens a sign-in that still owes the key...
    owed = client.post("/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD})
    assert owed.json()["status"] == "second_factor_required"
    assert "webauthn" in owed.json()["factors"]
    tokens = sign_in_with_key(client, "root@example.com", PASSWORD, key)
    me = client.get("/api/v1/access/me", headers=bearer(tokens["access_token"])).json()
    assert me["roles"] == ["ADMIN"]
    assert "admin:users" in me["permissions"]

    duplicate = CliRunner().invoke(
        app, ["users", "create", "--email", "root@example.com", "--role", "ADMIN"]
    )
    assert duplicate.exit_code == 1


def test_an_enrolment_link_expires_and_a_new_one_voids_the_old(
    cli_env: None, client: TestClient, container: Container, clock: FrozenClock
) -> None:
    first = CliRunner().invoke(
        app, ["users", "create", "--email", "c@example.com", "--role", "COMPLIANCE", "--verified"]
    )
    assert first.exit_code == 0, first.output
    old = ENROL_LINK.search(first.stdout)
    assert old
    renewed = CliRunner().invoke(app, ["users", "enrolment-link", "--email", "c@example.com"])
    assert renewed.exit_code == 0, renewed.output
    new = ENROL_LINK.search(renewed.stdout)
    assert new
    assert new.group(1) != old.group(1)
    challenge = "/v1/auth/staff-enrolment/challenge"
    assert client.post(challenge, json={"token": old.group(1)}).status_code == 422
    assert client.post(challenge, json={"token": new.group(1)}).status_code == 200
    # (The CLI runs on the wall clock; the expiry is checked on the test's clock.)
    with container.uow() as uow:
        staff = container.identity.accounts.by_email(uow.session, "c@example.com")
        assert staff is not None
        staff_id = staff.id
        link = container.identity.accounts.staff_enrolment_link(uow, staff_id, issued_by="test")
        uow.commit()
    token = link.rsplit("token=", 1)[1]
    assert client.post(challenge, json={"token": new.group(1)}).status_code == 422
    hours = container.settings.identity.staff_enrolment_hours
    clock.advance(timedelta(hours=hours, seconds=-1))
    assert client.post(challenge, json={"token": token}).status_code == 200
    clock.advance(timedelta(seconds=2))
    assert client.post(challenge, json={"token": token}).status_code == 422


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
    # Deliberate change (#25 item 4): an operator-set password is replaced before signing in.
    _replace_operator_password(client, "l@example.com", PASSWORD, OWN_PASSWORD)
    tokens = login(client, "l@example.com", OWN_PASSWORD)
    result = CliRunner().invoke(
        app, ["users", "lock", "--email", "l@example.com", "--reason", "test"]
    )
    assert result.exit_code == 0, result.output
    # Another process locked it: this one sees it within the revocation cache bound.
    clock.advance(container.settings.identity.revocation_cache_seconds + 0.1)
    assert client.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 401


OWN_PASSWORD = "a passphrase only I know 64"


def _replace_operator_password(client: TestClient, email: str, given: str, own: str) -> None:
    response = client.post(
        "/v1/auth/password/change-required",
        json={"email": email, "current_password": given, "new_password": own},
    )
    assert response.status_code == 200, response.text


def test_an_operator_set_password_must_be_replaced_at_the_first_sign_in(
    cli_env: None, client: TestClient, container: Container, tmp_path: Path
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD)
    created = CliRunner().invoke(
        app,
        ["users", "create", "--email", "handed@example.com", "--role", "TRADER", "--verified",
         "--password-file", str(secret)],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    # The password the operator typed opens nothing: no session, no tokens.
    handed = {"email": "handed@example.com", "password": PASSWORD}
    first = client.post("/v1/auth/login", json=handed)
    assert first.status_code == 403
    assert first.json()["type"] == "urn:rampart:problem:password-change-required"
    assert "access_token" not in first.json()
    # Keeping the given password, or a wrong one, does not get through.
    same = client.post(
        "/v1/auth/password/change-required",
        json={"email": "handed@example.com", "current_password": PASSWORD,
              "new_password": PASSWORD},
    )  # fmt: skip
    assert same.status_code == 422
    wrong = client.post(
        "/v1/auth/password/change-required",
        json={"email": "handed@example.com", "current_password": "not the one 12345",
              "new_password": OWN_PASSWORD},
    )  # fmt: skip
    assert wrong.status_code == 401
    _replace_operator_password(client, "handed@example.com", PASSWORD, OWN_PASSWORD)
    assert latest(container, "handed@example.com", "password-changed")
    # Now the owner's own password signs in; the operator's is gone.
    login(client, "handed@example.com", OWN_PASSWORD)
    old = client.post("/v1/auth/login", json=handed)
    assert old.status_code == 401
    # The route is no back door for other accounts: it changes nothing once the flag is gone.
    again = client.post(
        "/v1/auth/password/change-required",
        json={"email": "handed@example.com", "current_password": OWN_PASSWORD,
              "new_password": "yet another passphrase 99"},
    )  # fmt: skip
    assert again.status_code == 403
    assert again.json()["type"] == "urn:rampart:problem:password-change-not-required"

"""Administrators start a user's password reset without ever holding the password (ASVS 6.4.6).

The link goes to the address on the account and nowhere else: not in the API's answer, not in the
CLI's output, not in the audit log. The user chooses the new password on the link's page. Staff
need `admin:users` and a security key proven within five minutes, like every sensitive staff
action; each reset is audited with the operator and their reason.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from tests.identity.support import (
    PASSWORD,
    audit_entries,
    bearer,
    latest,
    link_token,
    login,
    verified_user,
)
from tests.identity.test_session_control import admin_token, user_id_of

ANN = "ann@example.com"
NEW_PASSWORD = "a brand new passphrase 77"
REASON = {"reason": "ticket 4711: locked out after a phone change"}


def test_an_admin_starts_a_reset_and_only_the_user_receives_the_link(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, ANN)
    ann = login(client, ANN)
    ann_id = user_id_of(client, ann["access_token"])
    client.post("/v1/auth/password/forgot", json={"email": ANN})
    earlier = link_token(container, ANN, "password-reset")
    root = admin_token(client, container)

    sent = client.post(
        f"/v1/admin/users/{ann_id}/password-reset", headers=bearer(root), json=REASON
    )
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "reset_sent"
    message = latest(container, ANN, "password-reset")
    assert "support started a password reset" in message.text
    token = link_token(container, ANN, "password-reset")
    assert token != earlier
    assert token not in sent.text
    [entry] = audit_entries(container, "identity.password.reset_sent_by_operator")
    assert entry["subject"] == f"user:{ann_id}"
    assert entry["actor"] == f"user:{user_id_of(client, root)}"
    assert entry["details"] == {"reason": REASON["reason"]}
    assert token not in str(entry)

    # Only the newest link counts; the user, and only the user, sets the password with it.
    stale = client.post(
        "/v1/auth/password/reset", json={"token": earlier, "password": NEW_PASSWORD}
    )
    assert stale.status_code == 422
    done = client.post("/v1/auth/password/reset", json={"token": token, "password": NEW_PASSWORD})
    assert done.status_code == 200, done.text
    assert client.get("/v1/me", headers=bearer(ann["access_token"])).status_code == 401
    old = client.post("/v1/auth/login", json={"email": ANN, "password": PASSWORD})
    assert old.status_code == 401
    assert login(client, ANN, NEW_PASSWORD)["status"] == "complete"


def test_a_reset_needs_admin_users_and_a_security_key_within_five_minutes(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    verified_user(client, container, ANN)
    ann = login(client, ANN)["access_token"]
    ann_id = user_id_of(client, ann)
    refused = client.post(
        f"/v1/admin/users/{ann_id}/password-reset", headers=bearer(ann), json=REASON
    )
    assert refused.status_code == 403

    root = admin_token(client, container)
    clock.advance(timedelta(minutes=6))
    stale = client.post(
        f"/v1/admin/users/{ann_id}/password-reset", headers=bearer(root), json=REASON
    )
    assert stale.status_code == 401
    assert stale.json()["type"] == "urn:rampart:problem:step-up-required"
    assert stale.json()["factor"] == "webauthn"
    assert not audit_entries(container, "identity.password.reset_sent_by_operator")


@pytest.mark.parametrize("target", ["unknown", "locked"])
def test_a_reset_for_no_usable_account_is_refused(
    client: TestClient, container: Container, target: str
) -> None:
    verified_user(client, container, ANN)
    ann_id = user_id_of(client, login(client, ANN)["access_token"])
    root = admin_token(client, container)
    if target == "locked":
        with container.uow() as uow:
            container.identity.accounts.set_locked(uow, ann_id, True, reason="fraud review")
            uow.commit()
    else:
        ann_id = "00000000-0000-7000-8000-000000000000"
    refused = client.post(
        f"/v1/admin/users/{ann_id}/password-reset", headers=bearer(root), json=REASON
    )
    assert refused.status_code == (409 if target == "locked" else 404)
    assert refused.headers["content-type"] == "application/problem+json"


def test_the_cli_sends_the_reset_and_prints_no_link(
    client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rampart.cli import app

    verified_user(client, container, ANN)
    monkeypatch.setenv("RAMPART_DATA_DIR", str(container.settings.data_dir))
    monkeypatch.setenv("RAMPART_DATABASE_URL", container.settings.effective_database_url)
    runner = CliRunner()
    done = runner.invoke(
        app, ["users", "reset-password", "--email", ANN, "--reason", "phoned support, ID checked"]
    )
    assert done.exit_code == 0, done.output
    token = link_token(container, ANN, "password-reset")
    assert token not in done.output
    assert "token=" not in done.output
    [entry] = audit_entries(container, "identity.password.reset_sent_by_operator")
    assert entry["actor"] == "system:cli"
    missing = runner.invoke(
        app, ["users", "reset-password", "--email", "nobody@example.com", "--reason", "why"]
    )
    assert missing.exit_code == 1

"""Full re-authentication before changing what signs a person in (ASVS 7.5.1).

A user with a second factor proves one again (a step-up within `mfa.step_up_minutes`) before
adding or removing a factor, changing their phone number (the SMS factor), renaming a key,
making new backup codes, or changing their password or email address (those two also need the
current password: tests/mfa/test_step_up_account_changes.py). A user without any factor has only
the password: their first factor needs a sign-in within the same window, so an older (stolen)
session cannot bind someone else's authenticator to the account."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from tests.identity.support import bearer, login
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.test_api import signed_up
from tests.mfa.test_step_up_account_changes import _stale_mfa_session, _step_up

STEP_UP = "urn:rampart:problem:step-up-required"
SIGN_IN_AGAIN = "urn:rampart:problem:reauthentication-required"
ORIGIN = "http://127.0.0.1:8000"  # the dev relying party's origin

#: (attribute, method, path, body, status once re-authenticated)
CHANGES = [
    ("phone-number", "POST", "/v1/mfa/sms", {"phone": "+44 7700 900123"}, 200),
    ("email-codes", "POST", "/v1/mfa/email", None, 200),
    ("security-key", "POST", "/v1/mfa/webauthn/registrations", {}, 200),
    ("authenticator-app-removal", "DELETE", "/v1/mfa/totp", None, 204),
    ("backup-codes", "POST", "/v1/mfa/backup-codes", None, 200),
]


def _send(client: TestClient, access: str, method: str, path: str, body: Any) -> Any:
    return client.request(method, path, headers=bearer(access), json=body)


@pytest.mark.parametrize(
    ("method", "path", "body", "done"),
    [change[1:] for change in CHANGES],
    ids=[change[0] for change in CHANGES],
)
def test_each_factor_change_needs_a_fresh_second_factor(
    client: TestClient,
    container: Container,
    clock: FrozenClock,
    method: str,
    path: str,
    body: Any,
    done: int,
) -> None:
    access, secret = _stale_mfa_session(client, container, clock)
    before = client.get("/v1/mfa", headers=bearer(access)).json()
    refused = _send(client, access, method, path, body)
    assert refused.status_code == 401
    assert refused.json()["type"] == STEP_UP
    after = client.get("/v1/mfa", headers=bearer(access)).json()
    assert {k: after[k] for k in ("factors", "totp", "sms", "email")} == {
        k: before[k] for k in ("factors", "totp", "sms", "email")
    }

    clock.advance(31)
    _step_up(client, container, access, secret)
    accepted = _send(client, access, method, path, body)
    assert accepted.status_code == done, accepted.text


def test_renaming_and_removing_a_security_key_need_a_fresh_second_factor(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    access, secret = _stale_mfa_session(client, container, clock)
    clock.advance(31)
    _step_up(client, container, access, secret)
    begun = client.post("/v1/mfa/webauthn/registrations", headers=bearer(access), json={})
    credential = SoftAuthenticator().register(begun.json()["options"], origin=ORIGIN)
    added = client.post(
        f"/v1/mfa/webauthn/registrations/{begun.json()['challenge_id']}",
        headers=bearer(access),
        json={"credential": credential, "name": "Blue key"},
    )
    assert added.status_code == 201, added.text
    key_id = added.json()["id"]
    clock.advance(timedelta(minutes=container.settings.mfa.step_up_minutes + 1))

    renamed = client.patch(
        f"/v1/mfa/webauthn/{key_id}", headers=bearer(access), json={"name": "Mallory's key"}
    )
    assert renamed.status_code == 401
    assert renamed.json()["type"] == STEP_UP
    removed = client.delete(f"/v1/mfa/webauthn/{key_id}", headers=bearer(access))
    assert removed.status_code == 401
    assert removed.json()["type"] == STEP_UP
    keys = client.get("/v1/mfa", headers=bearer(access)).json()["authenticators"]
    assert [k["name"] for k in keys] == ["Blue key"]


def test_the_first_factor_needs_a_recent_sign_in(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    stale = signed_up(client, container)
    clock.advance(timedelta(minutes=container.settings.mfa.step_up_minutes + 1))
    refused = client.post("/v1/mfa/totp", headers=bearer(stale))
    assert refused.status_code == 401
    assert refused.json()["type"] == SIGN_IN_AGAIN
    assert client.get("/v1/mfa", headers=bearer(stale)).json()["enrolled"] is False

    # Signing in again (the password, proven now) is the re-authentication it asks for.
    fresh = login(client, "ann@example.com")
    assert fresh["status"] == "complete"
    begun = client.post("/v1/mfa/totp", headers=bearer(str(fresh["access_token"])))
    assert begun.status_code == 200, begun.text

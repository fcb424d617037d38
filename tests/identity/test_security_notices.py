"""The owner hears of suspicious sign-in attempts (ASVS 6.3.5): a lock after failed passwords, a
right password followed by wrong second factors, and a sign-in from a new device
(`test_flows.py::test_new_device_is_announced_by_email_and_can_be_revoked`). Each notice goes to
the address on the account, never to one that was typed."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from tests.identity.support import inbox, latest, login, verified_user

ANN = "ann@example.com"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # The account locks at the third wrong password (ten by default); the waits between
    # attempts are passed on the frozen clock.
    return Settings(
        profile="dev",
        data_dir=tmp_path / "var",
        database_url=database_url,
        identity={"account_free_failures": 1, "account_lock_after": 3},  # type: ignore[arg-type]
    )


def kinds(container: Container, to: str) -> list[str]:
    return [m.kind for m in inbox(container, to)]


def wrong_password(client: TestClient, clock: FrozenClock, email: str) -> int:
    clock.advance(120)  # past the throttle's wait, so each attempt is really checked
    response = client.post("/v1/auth/login", json={"email": email, "password": "not it at all"})
    return response.status_code


def test_an_account_locked_by_wrong_passwords_tells_its_owner_once(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    verified_user(client, container, ANN)
    assert [wrong_password(client, clock, ANN) for _ in range(2)] == [401, 401]
    assert "account-locked" not in kinds(container, ANN)

    assert wrong_password(client, clock, ANN) == 401
    notice = latest(container, ANN, "account-locked")
    assert "paused for 15 minutes" in notice.text
    assert "Nobody signed in" in notice.text
    # Attempts while it stays locked are refused without another email.
    client.post("/v1/auth/login", json={"email": ANN, "password": "not it at all"})
    assert kinds(container, ANN).count("account-locked") == 1


def test_guessing_at_an_address_without_an_account_emails_nobody(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    for _ in range(3):
        assert wrong_password(client, clock, "nobody@example.com") == 401
    assert inbox(container, "nobody@example.com") == []


def test_a_right_password_with_wrong_second_factors_tells_the_owner(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    from tests.mfa.test_api import enrol_totp, signed_up

    token = signed_up(client, container)
    enrol_totp(client, container, token)
    clock.advance(30)
    pending = login(client, ANN)["pending_login"]

    def wrong_code() -> None:
        clock.advance(61)  # keep clear of the per-user MFA rate limit
        refused = client.post(
            "/v1/auth/login/mfa", json={"pending_token": pending, "kind": "totp", "code": "000000"}
        )
        assert refused.status_code == 401, refused.text

    wrong_code()
    wrong_code()
    assert "second-factor-failed" not in kinds(container, ANN)
    wrong_code()
    notice = latest(container, ANN, "second-factor-failed")
    assert "correct Rampart password" in notice.text
    assert "failed the second factor 3 times" in notice.text
    assert "testclient" in notice.text  # the IP the attempt came from
    wrong_code()
    assert kinds(container, ANN).count("second-factor-failed") == 1

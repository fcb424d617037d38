"""The seam for multi-factor authentication: a user with a factor gets no token from the password
alone; only `complete_pending_login` (what the MFA code calls) issues one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from rampart.bootstrap import Container
from rampart.identity.domain import PendingLoginError
from rampart.kernel.clock import FrozenClock
from tests.identity.support import PASSWORD, bearer, verified_user


class OneFactor:
    def __init__(self, container: Container, user_email: str) -> None:
        self.accounts = container.identity.accounts
        self.email = user_email

    def required_factors(self, session: Session, user_id: str) -> list[str]:
        user = self.accounts.by_email(session, self.email)
        return ["totp"] if user is not None and user.id == user_id else []


@pytest.fixture
def with_factor(container: Container) -> None:
    container.identity.login.second_factors.insert(0, OneFactor(container, "mfa@example.com"))


def _password_step(client: TestClient) -> dict:
    response = client.post(
        "/v1/auth/login", json={"email": "mfa@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "second_factor_required"
    assert "access_token" not in body
    assert "refresh_token" not in body
    assert body["factors"] == ["totp"]
    return body


def test_password_alone_issues_nothing(
    client: TestClient, container: Container, with_factor: None
) -> None:
    verified_user(client, container, "mfa@example.com")
    body = _password_step(client)
    # The pending token is no credential.
    assert client.get("/v1/me", headers=bearer(body["pending_login"])).status_code == 401

    login = container.identity.login
    with container.uow() as uow:
        issued = login.complete_pending_login(uow, body["pending_login"], factor="totp")
        uow.commit()
    assert issued.access_token
    me = client.get("/v1/me", headers=bearer(issued.access_token))
    assert me.status_code == 200
    # Used once only.
    with container.uow() as uow, pytest.raises(PendingLoginError):
        login.complete_pending_login(uow, body["pending_login"], factor="totp")


def test_pending_login_expires_and_dies_after_failures(
    client: TestClient, container: Container, clock: FrozenClock, with_factor: None
) -> None:
    verified_user(client, container, "mfa@example.com")
    login = container.identity.login
    body = _password_step(client)
    clock.advance(timedelta(minutes=container.settings.identity.pending_login_minutes, seconds=1))
    with container.uow() as uow, pytest.raises(PendingLoginError):
        login.complete_pending_login(uow, body["pending_login"], factor="totp")

    body = _password_step(client)
    for _ in range(5):
        with container.uow() as uow:
            login.record_factor_failure(uow, body["pending_login"])
            uow.commit()
    with container.uow() as uow, pytest.raises(PendingLoginError):
        login.complete_pending_login(uow, body["pending_login"], factor="totp")


def test_users_without_factors_are_unaffected(
    client: TestClient, container: Container, with_factor: None
) -> None:
    verified_user(client, container, "plain@example.com")
    response = client.post(
        "/v1/auth/login", json={"email": "plain@example.com", "password": PASSWORD}
    )
    assert response.json()["status"] == "complete"

"""Creating an API key needs a second factor within `mfa.step_up_minutes`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from tests.access.support import as_user, install, new_user


@pytest.fixture
def strict_client(database_url: str, tmp_path: Path, clock: FrozenClock) -> Iterator[TestClient]:
    from rampart.web.app import create_app

    settings = Settings(profile="dev", data_dir=tmp_path / "var", database_url=database_url)
    assert settings.mfa.required_for_trading
    container = bootstrap(settings, clock=clock)
    install(container)
    with TestClient(create_app(container), base_url="https://testserver") as client:
        yield client


def _enrol_totp(container: Container, user: str) -> None:
    with container.uow() as uow:
        enrolment = container.mfa.begin_totp(uow, user, "user@example.com")
        code = pyotp.TOTP(enrolment.secret).at(container.clock.now())
        assert container.mfa.confirm_totp(uow, user, code).ok
        uow.commit()


def test_without_a_second_factor_no_key_is_created(strict_client: TestClient) -> None:
    user = new_user(strict_client.app.state.container)  # type: ignore[attr-defined]
    response = strict_client.post(
        "/api/v1/apikeys", json={"scopes": ["trade"]}, headers=as_user(user)
    )
    assert response.status_code == 403
    assert response.json()["type"] == "urn:rampart:problem:mfa-enrolment-required"


def test_a_stale_second_factor_asks_for_step_up(
    strict_client: TestClient, clock: FrozenClock
) -> None:
    container: Container = strict_client.app.state.container  # type: ignore[attr-defined]
    user = new_user(container)
    _enrol_totp(container, user)
    stale = clock.now().timestamp() - container.settings.mfa.step_up_minutes * 60 - 1
    response = strict_client.post(
        "/api/v1/apikeys", json={"scopes": ["trade"]}, headers=as_user(user, mfa_at=stale)
    )
    assert response.status_code == 401
    assert response.json()["type"] == "urn:rampart:problem:step-up-required"
    fresh = clock.now().timestamp() - 30
    response = strict_client.post(
        "/api/v1/apikeys", json={"scopes": ["trade"]}, headers=as_user(user, mfa_at=fresh)
    )
    assert response.status_code == 201, response.text

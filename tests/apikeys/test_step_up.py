"""Creating an API key needs a second factor within `mfa.step_up_minutes`: real accounts, real
sign-in, a real authenticator app (no test authenticator: this is about authentication)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from tests.identity.support import bearer
from tests.mfa.test_api import code_for, enrol_totp, mfa_login, signed_up

STEP_UP = "urn:rampart:problem:step-up-required"


@pytest.fixture
def strict_client(database_url: str, tmp_path: Path, clock: FrozenClock) -> Iterator[TestClient]:
    from rampart.web.app import create_app

    settings = Settings(profile="dev", data_dir=tmp_path / "var", database_url=database_url)
    assert settings.mfa.required_for_trading
    container = bootstrap(settings, clock=clock)
    # The app's lifespan starts the container and closes it on the way out.
    with TestClient(create_app(container), base_url="https://testserver") as client:
        yield client


def _container(client: TestClient) -> Container:
    container: Container = client.app.state.container  # type: ignore[attr-defined]
    return container


def test_without_a_second_factor_no_key_is_created(strict_client: TestClient) -> None:
    token = signed_up(strict_client, _container(strict_client))
    response = strict_client.post(
        "/api/v1/apikeys", json={"scopes": ["trade"]}, headers=bearer(token)
    )
    assert response.status_code == 403
    assert response.json()["type"] == "urn:rampart:problem:mfa-enrolment-required"


def test_a_stale_second_factor_asks_for_step_up(
    strict_client: TestClient, clock: FrozenClock
) -> None:
    container = _container(strict_client)
    token = signed_up(strict_client, container)
    secret, _ = enrol_totp(strict_client, container, token)
    clock.advance(30)
    done = mfa_login(
        strict_client, "ann@example.com", kind="totp", code=code_for(container, secret)
    )
    access = done.json()["access_token"]
    # Within the window right after signing in with the factor...
    fresh = strict_client.post("/api/v1/apikeys", json={"scopes": ["read"]}, headers=bearer(access))
    assert fresh.status_code == 201, fresh.text

    # ...and refused once it has passed, until the factor is given again.
    clock.advance(timedelta(minutes=container.settings.mfa.step_up_minutes, seconds=1))
    stale = strict_client.post(
        "/api/v1/apikeys", json={"scopes": ["trade"]}, headers=bearer(access)
    )
    assert stale.status_code == 401
    assert stale.json()["type"] == STEP_UP
    stepped = strict_client.post(
        "/v1/mfa/step-up",
        headers=bearer(access),
        json={"kind": "totp", "code": code_for(container, secret)},
    )
    assert stepped.status_code == 200, stepped.text
    again = strict_client.post(
        "/api/v1/apikeys", json={"scopes": ["trade"]}, headers=bearer(access)
    )
    assert again.status_code == 201, again.text

"""The `identity.require_second_factor` policy: on (production's default), a signed-in person
without a second factor reaches only their profile, factor enrolment and sign-out."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.config import Settings
from tests.identity.support import bearer
from tests.mfa.test_api import enrol_totp, signed_up

ENROL_FIRST = "urn:rampart:problem:mfa-enrolment-required"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        profile="dev",
        data_dir=tmp_path / "var",
        database_url=database_url,
        identity={"require_second_factor": True},  # type: ignore[arg-type]
    )


def test_the_policy_is_on_by_default_in_production_and_off_in_dev() -> None:
    assert Settings(profile="production").second_factor_required
    assert not Settings(profile="dev").second_factor_required
    off = Settings(profile="production", identity={"require_second_factor": False})  # type: ignore[arg-type]
    assert not off.second_factor_required


def test_without_a_second_factor_only_enrolment_and_sign_out_are_open(
    client: TestClient, container: Container
) -> None:
    token = signed_up(client, container)
    # Account data (and everything else behind a permission) is refused...
    for path in ("/v1/account", "/v1/orders"):
        refused = client.get(path, headers=bearer(token))
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["type"] == ENROL_FIRST
    # ...the person's own profile and enrolment are open...
    assert client.get("/v1/me", headers=bearer(token)).status_code == 200
    enrol_totp(client, container, token)
    # ...and with a factor enrolled, the same sign-in reaches the account.
    assert client.get("/v1/account", headers=bearer(token)).status_code == 200
    # Sign-out always works.
    assert client.post("/v1/auth/logout", headers=bearer(token)).status_code == 204

"""Staff sessions over the API (#14): a support-assisted factor reset of a staff member ends their
sessions and refresh tokens, and a staff member's refresh tokens honour the 15-minute staff idle
timeout (traders keep theirs)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from rampart.access.domain import Role
from rampart.bootstrap import Container
from rampart.config import Settings
from rampart.identity.db import SessionRow
from rampart.kernel.clock import FrozenClock
from tests.access.support import (
    ACCOUNT_PASSWORD,
    as_staff,
    email_of,
    install,
    new_account,
    new_staff,
)
from tests.support.staff import enrol_security_key, sign_in_with_key

INVALID_REFRESH = "urn:rampart:problem:invalid-refresh-token"
RESET = {
    "verification_method": "video-call",
    "verification_reference": "CASE-7",
    "reason": "lost their security key",
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # Traders idle out after an hour here, staff after the default 15 minutes.
    return Settings(
        profile="dev",
        data_dir=tmp_path / "var",
        database_url=database_url,
        identity={"session_idle_minutes": 60},  # type: ignore[arg-type]
    )


def _bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _refresh(client: TestClient, tokens: dict[str, Any]) -> Any:
    return client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})


def _staff_sign_in(client: TestClient, container: Container, role: str) -> tuple[str, Any]:
    user = new_account(container, role)
    key = enrol_security_key(container, user)
    return user, sign_in_with_key(client, email_of(container, user), ACCOUNT_PASSWORD, key)


def _four_eyes_reset(client: TestClient, container: Container, support: str, user: str) -> Any:
    """One support member asks, another approves (four eyes): the reset happens at approval."""
    asked = client.post(
        f"/v1/admin/users/{user}/mfa/reset", json=RESET, headers=as_staff(container, support)
    )
    assert asked.status_code == 202, asked.text
    approver = new_staff(container, Role.SUPPORT)
    return client.post(
        f"/v1/admin/mfa/reset-requests/{asked.json()['request_id']}/approve",
        headers=as_staff(container, approver),
    )


def _revoke_reasons(container: Container, user: str) -> list[str | None]:
    with container.db.read() as session:
        return list(
            session.scalars(select(SessionRow.revoke_reason).where(SessionRow.user_id == user))
        )


def test_a_factor_reset_of_a_staff_member_ends_their_sessions_and_refresh_tokens(
    client: TestClient, container: Container
) -> None:
    install(container)
    admin, tokens = _staff_sign_in(client, container, Role.ADMIN)
    assert client.get("/v1/risk/halts", headers=_bearer(tokens)).status_code == 200
    support = new_staff(container, Role.SUPPORT)
    reset = _four_eyes_reset(client, container, support, admin)
    assert reset.status_code == 200, reset.text
    # The session proved a key that no longer counts: it ends, with everything it issued.
    assert client.get("/v1/me", headers=_bearer(tokens)).status_code == 401
    refreshed = _refresh(client, tokens)
    assert refreshed.status_code == 401
    assert _revoke_reasons(container, admin) == ["factor-reset"]


def test_a_factor_reset_of_a_trader_leaves_their_sessions(
    client: TestClient, container: Container
) -> None:
    install(container)
    trader = new_account(container, Role.TRADER)
    signed_in = client.post(
        "/v1/auth/login",
        json={"email": email_of(container, trader), "password": ACCOUNT_PASSWORD},
    )
    tokens = signed_in.json()
    support = new_staff(container, Role.SUPPORT)
    reset = _four_eyes_reset(client, container, support, trader)
    assert reset.status_code == 200, reset.text
    assert client.get("/v1/me", headers=_bearer(tokens)).status_code == 200
    assert _revoke_reasons(container, trader) == [None]


def test_a_staff_refresh_after_fifteen_idle_minutes_is_refused_and_ends_the_session(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    admin, tokens = _staff_sign_in(client, container, Role.ADMIN)
    clock.advance(timedelta(minutes=15, seconds=1))
    refused = _refresh(client, tokens)
    assert refused.status_code == 401
    assert refused.json()["type"] == INVALID_REFRESH
    assert "inactivity" in refused.json()["detail"]
    assert _revoke_reasons(container, admin) == ["idle"]
    # The refresh token was spent with the session: presenting it again changes nothing.
    assert _refresh(client, tokens).status_code == 401


def test_a_staff_member_at_work_keeps_refreshing_and_a_trader_idles_longer(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    admin, tokens = _staff_sign_in(client, container, Role.ADMIN)
    trader = new_account(container, Role.TRADER)
    trader_tokens = client.post(
        "/v1/auth/login",
        json={"email": email_of(container, trader), "password": ACCOUNT_PASSWORD},
    ).json()
    # Within the idle time a refresh works, and requests count as activity.
    clock.advance(timedelta(minutes=10))
    assert client.get("/v1/risk/halts", headers=_bearer(tokens)).status_code == 200
    clock.advance(timedelta(minutes=10))
    again = _refresh(client, tokens)
    assert again.status_code == 200, again.text
    assert _revoke_reasons(container, admin) == [None]
    # A trader's refresh token is not bound by the staff timeout.
    assert _refresh(client, trader_tokens).status_code == 200

"""How many sessions an account may hold (ASVS 7.1.2), and who may end them (ASVS 7.5.2).

At the cap, a new sign-in ends the session used least recently and the owner is told by email.
Ending another session, a device, or every session needs a sign-in or a second-factor step-up of
at most `identity.reauthentication_minutes` ago: a stolen token alone cannot sign the owner out.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from tests.identity.support import (
    PASSWORD,
    audit_entries,
    bearer,
    inbox,
    latest,
    login,
    verified_user,
)
from tests.identity.test_session_control import csrf, page_sign_in
from tests.support.staff import enrol_security_key, sign_in_with_key

ANN = "ann@example.com"
REAUTH = "urn:rampart:problem:reauthentication-required"
STEP_UP = "urn:rampart:problem:step-up-required"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        profile="dev",
        data_dir=tmp_path / "var",
        database_url=database_url,
        identity={  # type: ignore[arg-type]
            "max_concurrent_sessions": 3,
            "staff_max_concurrent_sessions": 2,
            "reauthentication_minutes": 5,
        },
    )


def works(client: TestClient, tokens: dict[str, Any]) -> bool:
    return client.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 200


# --- ASVS 7.1.2: the cap ---------------------------------------------------------------------
def test_a_sign_in_at_the_cap_ends_the_least_recently_used_session_and_tells_the_owner(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    verified_user(client, container, ANN)
    first = login(client, ANN, device_id="desk-0001")
    clock.advance(60)
    second = login(client, ANN, device_id="laptop-0002")
    clock.advance(60)
    third = login(client, ANN, device_id="phone-0003")
    clock.advance(60)
    # The first session is in use (a refresh), so the second is now the least recently used.
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    first = refreshed.json()
    clock.advance(60)

    fourth = login(client, ANN, device_id="tablet-0004")

    assert not works(client, second)
    assert all(works(client, t) for t in (first, third, fourth))
    listed = client.get("/v1/me/sessions", headers=bearer(fourth["access_token"])).json()
    assert {s["id"] for s in listed} == {t["session_id"] for t in (first, third, fourth)}
    notice = latest(container, ANN, "session-limit")
    assert "3 sessions at once" in notice.text
    ended = [
        e
        for e in audit_entries(container, "auth.session.revoked")
        if e["details"]["reason"] == "session-limit"
    ]
    assert [e["details"]["session_id"] for e in ended] == [second["session_id"]]


def test_below_the_cap_nothing_ends_and_nobody_is_told(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    verified_user(client, container, ANN)
    sessions = [login(client, ANN) for _ in range(3)]
    assert all(works(client, t) for t in sessions)
    assert not [m for m in inbox(container, ANN) if m.kind == "session-limit"]


def test_a_staff_account_holds_fewer_sessions(client: TestClient, container: Container) -> None:
    admin = "root@example.com"
    password_hash = container.identity.hashing.hasher.hash(PASSWORD)
    with container.uow() as uow:
        admin_id = container.identity.accounts.create_user(
            uow, admin, password_hash, role="ADMIN", verified=True, created_by="test"
        )
        uow.commit()
    key = enrol_security_key(container, admin_id)
    signed_in = [sign_in_with_key(client, admin, PASSWORD, key) for _ in range(3)]
    assert [works(client, t) for t in signed_in] == [False, True, True]
    assert latest(container, admin, "session-limit")


# --- ASVS 7.5.2: ending sessions takes a recent authentication ------------------------------
def test_without_a_second_factor_ending_other_sessions_needs_a_recent_sign_in(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    verified_user(client, container, ANN)
    mine = login(client, ANN, device_id="desk-0001")
    other = login(client, ANN, device_id="laptop-0002")
    devices = client.get("/v1/me/devices", headers=bearer(mine["access_token"])).json()
    laptop = devices[0]["id"]
    clock.advance(timedelta(minutes=6))
    headers = bearer(mine["access_token"])

    # A token more than five minutes from its sign-in (a stolen one, say) cannot end others.
    attempts = [
        client.delete(f"/v1/me/sessions/{other['session_id']}", headers=headers),
        client.post("/v1/me/sessions/end-others", headers=headers),
        client.delete(f"/v1/me/devices/{laptop}", headers=headers),
        client.post("/v1/auth/logout", json={"everywhere": True}, headers=headers),
    ]
    for refused in attempts:
        assert refused.status_code == 401, refused.text
        assert refused.json()["type"] == REAUTH
    assert works(client, other)
    assert works(client, mine)

    # Signing in again is the re-authentication: the fresh session ends the others.
    again = login(client, ANN, device_id="desk-0001")
    ended = client.post("/v1/me/sessions/end-others", headers=bearer(again["access_token"]))
    assert ended.status_code == 200, ended.text
    assert ended.json() == {"sessions": 2}
    assert not works(client, other)
    assert not works(client, mine)
    assert works(client, again)


def test_ending_the_session_in_use_needs_nothing_more(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    verified_user(client, container, ANN)
    mine = login(client, ANN)
    clock.advance(timedelta(minutes=6))
    own = client.delete(
        f"/v1/me/sessions/{mine['session_id']}", headers=bearer(mine["access_token"])
    )
    assert own.status_code == 204
    assert not works(client, mine)


def test_with_a_second_factor_ending_other_sessions_needs_a_fresh_step_up(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    from tests.mfa.test_api import code_for, enrol_totp, signed_up

    first = signed_up(client, container)
    secret, _ = enrol_totp(client, container, first)
    sessions = []
    for _ in range(2):
        clock.advance(31)
        pending = login(client, ANN)
        done = client.post(
            "/v1/auth/login/mfa",
            json={
                "pending_token": pending["pending_login"],
                "kind": "totp",
                "code": code_for(container, secret),
            },
        )
        assert done.status_code == 200, done.text
        sessions.append(done.json())
    mine, other = sessions
    clock.advance(timedelta(minutes=6))
    headers = bearer(mine["access_token"])

    stale = client.delete(f"/v1/me/sessions/{other['session_id']}", headers=headers)
    assert stale.status_code == 401
    assert stale.json()["type"] == STEP_UP
    assert works(client, other)

    stepped = client.post(
        "/v1/mfa/step-up",
        json={"kind": "totp", "code": code_for(container, secret)},
        headers=headers,
    )
    assert stepped.status_code == 200, stepped.text
    ended = client.delete(f"/v1/me/sessions/{other['session_id']}", headers=headers)
    assert ended.status_code == 204
    assert not works(client, other)


def test_the_security_page_asks_for_a_fresh_sign_in_before_ending_another_session(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    verified_user(client, container, ANN)
    api = login(client, ANN, device_id="cli-tool-01")
    page_sign_in(client)
    clock.advance(timedelta(minutes=6))
    page = client.get("/security")
    refused = client.post(
        f"/security/sessions/{api['session_id']}/revoke",
        data={"csrf_token": csrf(page.text)},
        follow_redirects=False,
    )
    assert refused.status_code == 401
    assert "sign in again" in refused.text
    assert works(client, api)

    page_sign_in(client)
    page = client.get("/security")
    ended = client.post(
        "/security/sessions/end-others",
        data={"csrf_token": csrf(page.text)},
        follow_redirects=False,
    )
    assert ended.status_code == 303
    assert not works(client, api)
    assert client.get("/security").status_code == 200

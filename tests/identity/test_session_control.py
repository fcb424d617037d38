"""Ending sign-ins: a revoked session's stream closes, signing in again and stepping up replace
the session's cookie, administrators end one user's or everyone's sessions, and logout tells the
browser to clear what it kept."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect
from typer.testing import CliRunner

from rampart.bootstrap import Container
from rampart.config import Settings
from rampart.identity.authn import SESSION_COOKIE
from rampart.kernel.clock import FrozenClock
from tests.identity.support import (
    PASSWORD,
    audit_entries,
    bearer,
    link_token,
    login,
    verified_user,
)
from tests.support.staff import enrol_security_key, sign_in_with_key

ANN = "ann@example.com"
ADMIN = "root@example.com"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
#: Only a guard against hanging when a stream is never closed; the close comes within about
#: `stream_recheck_seconds` (50 ms here).
HANG_GUARD_SECONDS = 20.0


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        profile="dev",
        data_dir=tmp_path / "var",
        database_url=database_url,
        trading={"stream_recheck_seconds": 0.05},  # type: ignore[arg-type]
    )


def close_code(ws: WebSocketTestSession) -> int | None:
    """Read the stream until the server closes it: the close code (None if it never does)."""
    outcome: dict[str, int] = {}

    def drain() -> None:
        try:
            while True:
                ws.receive_json()
        except WebSocketDisconnect as closed:
            outcome["code"] = closed.code

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    reader.join(HANG_GUARD_SECONDS)
    return outcome.get("code")


def admin_token(client: TestClient, container: Container) -> str:
    """An administrator signed in with a security key (staff permissions need one)."""
    password_hash = container.identity.hashing.hasher.hash(PASSWORD)
    with container.uow() as uow:
        admin_id = container.identity.accounts.create_user(
            uow, ADMIN, password_hash, role="ADMIN", verified=True, created_by="test"
        )
        uow.commit()
    key = enrol_security_key(container, admin_id)
    return str(sign_in_with_key(client, ADMIN, PASSWORD, key)["access_token"])


def user_id_of(client: TestClient, token: str) -> str:
    return str(client.get("/v1/me", headers=bearer(token)).json()["id"])


def _logout(client: TestClient, container: Container, token: str) -> None:
    assert client.post("/v1/auth/logout", headers=bearer(token)).status_code == 204


def _logout_everywhere_from_elsewhere(client: TestClient, container: Container, _: str) -> None:
    other = login(client, ANN)["access_token"]
    sent = client.post("/v1/auth/logout", headers=bearer(other), json={"everywhere": True})
    assert sent.status_code == 204


def _lock(client: TestClient, container: Container, token: str) -> None:
    user_id = user_id_of(client, token)
    with container.uow() as uow:
        container.identity.accounts.set_locked(uow, user_id, True, reason="test")
        uow.commit()


def _password_reset(client: TestClient, container: Container, _: str) -> None:
    client.post("/v1/auth/password/forgot", json={"email": ANN})
    reset = link_token(container, ANN, "password-reset")
    done = client.post(
        "/v1/auth/password/reset",
        json={"token": reset, "password": "another long passphrase 31"},
    )
    assert done.status_code == 200, done.text


def _admin_ends_the_user(client: TestClient, container: Container, token: str) -> None:
    user_id = user_id_of(client, token)
    ended = client.post(
        f"/v1/admin/users/{user_id}/sessions/end",
        headers=bearer(admin_token(client, container)),
        json={"reason": "account takeover reported"},
    )
    assert ended.status_code == 200, ended.text
    assert ended.json()["sessions"] >= 1


def _admin_ends_everyone(client: TestClient, container: Container, _: str) -> None:
    ended = client.post(
        "/v1/admin/sessions/end",
        headers=bearer(admin_token(client, container)),
        json={"reason": "suspected breach"},
    )
    assert ended.status_code == 200, ended.text


REVOCATIONS: dict[str, Callable[[TestClient, Container, str], None]] = {
    "logout": _logout,
    "logout-everywhere": _logout_everywhere_from_elsewhere,
    "account-locked": _lock,
    "password-reset": _password_reset,
    "admin-ends-the-user": _admin_ends_the_user,
    "admin-ends-everyone": _admin_ends_everyone,
}


@pytest.mark.parametrize("revoke", REVOCATIONS.values(), ids=REVOCATIONS.keys())
def test_a_private_stream_closes_when_its_session_is_revoked(
    client: TestClient,
    container: Container,
    revoke: Callable[[TestClient, Container, str], None],
) -> None:
    verified_user(client, container, ANN)
    token = login(client, ANN)["access_token"]
    with client.websocket_connect("/v1/stream", headers=bearer(token)) as ws:
        assert ws.receive_json() == {"type": "welcome", "data": {"private": True}}
        revoke(client, container, token)
        # 1008: policy violation; before, the stream went on after logout.
        assert close_code(ws) == 1008


def test_a_browser_stream_closes_when_the_browser_signs_out(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, ANN)
    secret = page_sign_in(client)
    # The test client keeps `Secure` cookies to https requests: a browser sends it to wss://.
    cookie = {"cookie": f"{SESSION_COOKIE}={secret}"}
    with client.websocket_connect("/v1/stream", headers=cookie) as ws:
        assert ws.receive_json()["data"] == {"private": True}
        security = client.get("/security")
        out = client.post(
            "/logout", data={"csrf_token": csrf(security.text)}, follow_redirects=False
        )
        assert out.status_code == 303
        assert close_code(ws) == 1008


def test_a_stream_closes_when_another_process_ends_the_session(
    client: TestClient, container: Container, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rampart users sessions end` runs in its own process: this one sees the revocation
    once its cached view of the session (`revocation_cache_seconds`) has lapsed."""
    from rampart.cli import app

    verified_user(client, container, ANN)
    token = login(client, ANN)["access_token"]
    monkeypatch.setenv("RAMPART_DATA_DIR", str(container.settings.data_dir))
    monkeypatch.setenv("RAMPART_DATABASE_URL", container.settings.effective_database_url)
    with client.websocket_connect("/v1/stream", headers=bearer(token)) as ws:
        assert ws.receive_json()["type"] == "welcome"
        ended = CliRunner().invoke(
            app, ["users", "sessions", "end", ANN, "--reason", "reported stolen laptop"]
        )
        assert ended.exit_code == 0, ended.output
        assert "ended 1 session" in ended.output
        clock.advance(container.settings.identity.revocation_cache_seconds + 1)
        assert close_code(ws) == 1008
    assert client.get("/v1/me", headers=bearer(token)).status_code == 401
    [entry] = audit_entries(container, "auth.session.ended_by_operator")
    assert entry["actor"] == "system:cli"
    assert entry["details"]["reason"] == "reported stolen laptop"


def test_the_cli_ends_everyone_or_refuses_an_ambiguous_target(
    client: TestClient, container: Container, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rampart.cli import app

    verified_user(client, container, ANN)
    token = login(client, ANN)["access_token"]
    monkeypatch.setenv("RAMPART_DATA_DIR", str(container.settings.data_dir))
    monkeypatch.setenv("RAMPART_DATABASE_URL", container.settings.effective_database_url)
    runner = CliRunner()
    both = runner.invoke(app, ["users", "sessions", "end", ANN, "--all", "--reason", "why not"])
    neither = runner.invoke(app, ["users", "sessions", "end", "--reason", "why not"])
    assert both.exit_code == neither.exit_code == 1
    everyone = runner.invoke(app, ["users", "sessions", "end", "--all", "--reason", "breach"])
    assert everyone.exit_code == 0, everyone.output
    # Another process did it: this one's cache is emptied by time, here by hand.
    clock.advance(container.settings.identity.revocation_cache_seconds + 1)
    assert client.get("/v1/me", headers=bearer(token)).status_code == 401
    [entry] = audit_entries(container, "auth.session.revoked_everyone")
    assert entry["details"]["reason"] == "breach"


# --- administrators -----------------------------------------------------------------------
def test_only_administrators_end_sessions_and_an_unknown_user_is_404(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, ANN)
    ann = login(client, ANN)["access_token"]
    ann_id = user_id_of(client, ann)
    body = {"reason": "testing the permission"}
    refused = client.post(f"/v1/admin/users/{ann_id}/sessions/end", headers=bearer(ann), json=body)
    assert refused.status_code == 403
    everyone = client.post("/v1/admin/sessions/end", headers=bearer(ann), json=body)
    assert everyone.status_code == 403
    assert client.get("/v1/me", headers=bearer(ann)).status_code == 200

    root = admin_token(client, container)
    missing = client.post(
        "/v1/admin/users/00000000-0000-7000-8000-000000000000/sessions/end",
        headers=bearer(root),
        json=body,
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_an_administrator_ends_one_users_sessions_and_no_one_elses(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, ANN)
    verified_user(client, container, "bob@example.com")
    ann_tokens = login(client, ANN)
    bob = login(client, "bob@example.com")["access_token"]
    root = admin_token(client, container)
    ann_id = user_id_of(client, ann_tokens["access_token"])
    ended = client.post(
        f"/v1/admin/users/{ann_id}/sessions/end",
        headers=bearer(root),
        json={"reason": "account takeover reported"},
    )
    assert ended.json() == {"sessions": 1}
    assert client.get("/v1/me", headers=bearer(ann_tokens["access_token"])).status_code == 401
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": ann_tokens["refresh_token"]})
    assert refreshed.status_code == 401
    assert client.get("/v1/me", headers=bearer(bob)).status_code == 200
    assert client.get("/v1/me", headers=bearer(root)).status_code == 200
    [entry] = audit_entries(container, "auth.session.ended_by_operator")
    assert entry["subject"] == f"user:{ann_id}"
    assert entry["actor"] == f"user:{user_id_of(client, root)}"
    assert entry["details"] == {"sessions": 1, "reason": "account takeover reported"}


def test_an_administrator_ends_everyones_sessions_including_their_own(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, ANN)
    ann = login(client, ANN)
    root = admin_token(client, container)
    ended = client.post(
        "/v1/admin/sessions/end", headers=bearer(root), json={"reason": "suspected breach"}
    )
    assert ended.status_code == 200
    assert ended.json()["sessions"] == 2
    for token in (ann["access_token"], root):
        assert client.get("/v1/me", headers=bearer(token)).status_code == 401
    assert (
        client.post("/v1/auth/refresh", json={"refresh_token": ann["refresh_token"]}).status_code
        == 401
    )
    # Signing in again works: the accounts are untouched.
    assert login(client, ANN)["status"] == "complete"
    [entry] = audit_entries(container, "auth.session.revoked_everyone")
    assert entry["details"] == {"sessions": 2, "reason": "suspected breach"}


# --- the browser's cookie -----------------------------------------------------------------
def csrf(text: str) -> str:
    match = CSRF.search(text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def page_sign_in(client: TestClient, email: str = ANN) -> str:
    """Sign in on the pages as a browser does; the session cookie it ends with."""
    page = client.get("/login")
    sent = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf(page.text)},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    assert sent.headers["location"] == "/security"
    return str(client.cookies[SESSION_COOKIE])


def with_cookie(client: TestClient, secret: str) -> int:
    """The status of /v1/me for a browser holding `secret` as its session cookie."""
    client.cookies.set(SESSION_COOKIE, secret)
    return client.get("/v1/me").status_code


def test_signing_in_again_replaces_the_session_and_ends_the_old_one(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, ANN)
    first = page_sign_in(client)
    second = page_sign_in(client)
    assert second != first
    assert with_cookie(client, first) == 401
    assert with_cookie(client, second) == 200
    [entry] = [
        e
        for e in audit_entries(container, "auth.session.revoked")
        if e["details"]["reason"] == "replaced-by-sign-in"
    ]
    assert entry["details"]["session_id"] != ""


def _page_sign_in_with_totp(client: TestClient, container: Container, clock: FrozenClock) -> str:
    """Ann signs up, enrols an authenticator app and signs in on the pages with it; returns the
    app's secret."""
    from tests.mfa.test_api import code_for, enrol_totp, signed_up

    token = signed_up(client, container)
    secret, _ = enrol_totp(client, container, token)
    clock.advance(30)
    page = client.get("/login")
    client.post(
        "/login",
        data={"email": ANN, "password": PASSWORD, "csrf_token": csrf(page.text)},
        follow_redirects=False,
    )
    done = client.post(
        "/login/second-factor",
        data={"kind": "totp", "code": code_for(container, secret)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return str(secret)


def test_a_copied_cookie_dies_when_its_browser_steps_up(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    from tests.mfa.test_api import code_for

    secret = _page_sign_in_with_totp(client, container, clock)
    before = str(client.cookies[SESSION_COOKIE])
    clock.advance(31)
    prompt = client.get("/security/step-up?next=/security")
    stepped = client.post(
        "/security/step-up",
        data={
            "kind": "totp",
            "code": code_for(container, secret),
            "next": "/security",
            "csrf_token": csrf(prompt.text),
        },
        follow_redirects=False,
    )
    assert stepped.status_code == 303, stepped.text
    after = str(client.cookies[SESSION_COOKIE])
    assert after != before
    # Same session, stepped up; the cookie from before the step-up (a copy an attacker may
    # hold) no longer works.
    assert with_cookie(client, before) == 401
    assert with_cookie(client, after) == 200
    assert audit_entries(container, "auth.session.rotated")


def test_the_step_up_api_gives_a_browser_session_a_new_cookie(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    from tests.mfa.test_api import code_for

    secret = _page_sign_in_with_totp(client, container, clock)
    before = str(client.cookies[SESSION_COOKIE])
    clock.advance(31)
    security = client.get("/security")
    stepped = client.post(
        "/v1/mfa/step-up",
        json={"kind": "totp", "code": code_for(container, secret)},
        headers={"X-CSRF-Token": csrf(security.text)},
    )
    assert stepped.status_code == 200, stepped.text
    after = str(client.cookies[SESSION_COOKIE])
    assert after != before
    assert with_cookie(client, before) == 401
    assert with_cookie(client, after) == 200


def test_logout_clears_the_site_data_and_the_cookie(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, ANN)
    page_sign_in(client)
    security = client.get("/security")
    out = client.post("/logout", data={"csrf_token": csrf(security.text)}, follow_redirects=False)
    assert out.headers["clear-site-data"] == '"cache", "storage"'
    assert SESSION_COOKIE in out.headers["set-cookie"]

    page_sign_in(client)
    security = client.get("/security")
    everywhere = client.post(
        "/security/logout-everywhere",
        data={"csrf_token": csrf(security.text)},
        follow_redirects=False,
    )
    assert everywhere.headers["clear-site-data"] == '"cache", "storage"'

    token = login(client, ANN)["access_token"]
    api = client.post("/v1/auth/logout", headers=bearer(token))
    assert api.status_code == 204
    assert api.headers["clear-site-data"] == '"cache", "storage"'

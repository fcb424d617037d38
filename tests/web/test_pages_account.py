"""The account pages in a browser's shoes: forms, CSRF, cookies, sessions and the mailbox page."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient
from tests.identity.support import PASSWORD, bearer, latest, link_token, login, verified_user

from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def _csrf(page_text: str) -> str:
    match = CSRF_FIELD.search(page_text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _sign_in(client: TestClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    page = client.get("/login")
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )


def test_sign_up_confirm_and_sign_in_with_pages(client: TestClient, container: Container) -> None:
    page = client.get("/signup")
    assert page.status_code == 200
    nonce = page.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert nonce
    assert "cdn" not in page.text.lower()
    done = client.post(
        "/signup",
        data={"email": "pat@example.com", "password": PASSWORD, "csrf_token": _csrf(page.text)},
    )
    assert done.status_code == 200
    assert "Check your email" in done.text

    # The person opens the link from their inbox, sees a button, and presses it.
    token = link_token(container, "pat@example.com", "verify-email")
    confirm = client.get(f"/verify-email?token={token}")
    assert confirm.status_code == 200
    # Deliberate change (#25 item 4): the token moved from the address into a short-lived
    # cookie on landing; the page no longer carries it either.
    assert token not in confirm.text
    assert "token=" not in str(confirm.url)
    confirmed = client.post(
        "/verify-email", data={"token": token, "csrf_token": _csrf(confirm.text)}
    )
    assert confirmed.status_code == 200
    assert "Email confirmed" in confirmed.text

    response = _sign_in(client, "pat@example.com")
    assert response.status_code == 303
    assert response.headers["location"] == "/security"
    security = client.get("/security")
    assert security.status_code == 200
    assert "pat@example.com" in security.text
    assert "(confirmed)" in security.text


def test_session_cookie_flags(client: TestClient, container: Container) -> None:
    verified_user(client, container, "flags@example.com")
    response = _sign_in(client, "flags@example.com")
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("__Host-rampart_session="))
    lowered = session.lower()
    assert "httponly" in lowered
    assert "secure" in lowered
    assert "samesite=strict" in lowered
    assert "path=/" in lowered
    assert "domain" not in lowered
    device = next(c for c in cookies if c.startswith("__Host-rampart_device="))
    assert "httponly" in device.lower()
    assert "secure" in device.lower()


def test_wrong_password_page_does_not_reveal_the_account(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "shy@example.com")
    wrong = _sign_in(client, "shy@example.com", "not the password")
    unknown = _sign_in(client, "nobody@example.com", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    strip = lambda text: text.replace("shy@example.com", "").replace("nobody@example.com", "")  # noqa: E731
    assert strip(CSRF_FIELD.sub("", wrong.text)) == strip(CSRF_FIELD.sub("", unknown.text))


def test_forms_without_the_csrf_token_are_refused(client: TestClient, container: Container) -> None:
    verified_user(client, container, "csrf@example.com")
    client.get("/login")
    missing = client.post(
        "/login", data={"email": "csrf@example.com", "password": PASSWORD, "csrf_token": ""}
    )
    assert missing.status_code == 403
    assert missing.json()["type"] == "urn:rampart:problem:csrf-failed"
    forged = client.post(
        "/login", data={"email": "csrf@example.com", "password": PASSWORD, "csrf_token": "x" * 32}
    )
    assert forged.status_code == 403

    assert _sign_in(client, "csrf@example.com").status_code == 303
    security = client.get("/security")
    # Signed in: a state change without the session's token is refused, whatever the route.
    assert client.post("/security/logout-everywhere", data={}).status_code == 403
    assert (
        client.post("/security/logout-everywhere", data={"csrf_token": "f" * 64}).status_code == 403
    )
    sessions = client.get("/v1/me/sessions")
    assert sessions.status_code == 200  # reads need no token
    other = login(client, "csrf@example.com")
    assert client.delete(f"/v1/me/sessions/{other['session_id']}").status_code == 403
    assert client.get("/v1/me", headers=bearer(other["access_token"])).status_code == 200
    response = client.delete(
        f"/v1/me/sessions/{other['session_id']}", headers={"X-CSRF-Token": _csrf(security.text)}
    )
    assert response.status_code == 204
    assert client.get("/v1/me", headers=bearer(other["access_token"])).status_code == 401


def test_security_page_lists_and_revokes_sessions_and_logs_out_everywhere(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "sec@example.com")
    api = login(client, "sec@example.com", device_id="cli-tool-01")
    _sign_in(client, "sec@example.com")
    page = client.get("/security")
    assert api["session_id"] in page.text
    revoke = client.post(
        f"/security/sessions/{api['session_id']}/revoke",
        data={"csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert revoke.status_code == 303
    assert client.get("/v1/me", headers=bearer(api["access_token"])).status_code == 401

    page = client.get("/security")
    out = client.post(
        "/security/logout-everywhere", data={"csrf_token": _csrf(page.text)}, follow_redirects=False
    )
    assert out.status_code == 303
    assert client.get("/security", follow_redirects=False).headers["location"] == "/login"


def test_idle_timeout_and_absolute_lifetime(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    cfg = container.settings.identity
    verified_user(client, container, "idle@example.com")
    _sign_in(client, "idle@example.com")
    clock.advance(timedelta(minutes=cfg.session_idle_minutes - 1))
    assert client.get("/v1/me").status_code == 200  # activity keeps it alive
    clock.advance(timedelta(minutes=cfg.session_idle_minutes - 1))
    assert client.get("/v1/me").status_code == 200
    clock.advance(timedelta(minutes=cfg.session_idle_minutes, seconds=1))
    gone = client.get("/v1/me")
    assert gone.status_code == 401
    assert gone.json()["type"] == "urn:rampart:problem:invalid-session"

    _sign_in(client, "idle@example.com")
    for _ in range(cfg.session_absolute_hours * 60 // (cfg.session_idle_minutes - 1) + 1):
        clock.advance(timedelta(minutes=cfg.session_idle_minutes - 1))
        if client.get("/v1/me").status_code != 200:
            break
    else:
        raise AssertionError("the session outlived its absolute lifetime")
    assert client.get("/v1/me").status_code == 401


def test_reset_password_pages(client: TestClient, container: Container) -> None:
    verified_user(client, container, "reset@example.com")
    page = client.get("/forgot-password")
    client.post(
        "/forgot-password", data={"email": "reset@example.com", "csrf_token": _csrf(page.text)}
    )
    token = link_token(container, "reset@example.com", "password-reset")
    form = client.get(f"/reset-password?token={token}")
    weak = client.post(
        "/reset-password",
        data={"token": token, "password": "password1", "csrf_token": _csrf(form.text)},
    )
    assert weak.status_code == 422
    assert "most common" in weak.text
    ok = client.post(
        "/reset-password",
        data={
            "token": token,
            "password": "a fresh page passphrase 8",
            "csrf_token": _csrf(form.text),
        },
    )
    assert ok.status_code == 200
    assert "Password changed" in ok.text
    assert latest(container, "reset@example.com", "password-changed")


def test_dev_mailbox_page_shows_messages_escaped(client: TestClient, container: Container) -> None:
    verified_user(client, container, "box@example.com")
    page = client.get("/dev/mailbox")
    assert page.status_code == 200
    assert "box@example.com" in page.text
    message = latest(container, "box@example.com", "verify-email")
    shown = client.get(f"/dev/mailbox/{message.id}")
    assert shown.status_code == 200
    assert "/verify-email?token=" in shown.text
    assert client.get("/dev/mailbox/not-an-id").status_code == 404


def test_pages_escape_what_users_type(client: TestClient) -> None:
    page = client.get("/signup")
    evil = '"><script>alert(1)</script>@example.com'
    response = client.post(
        "/signup", data={"email": evil, "password": "short", "csrf_token": _csrf(page.text)}
    )
    assert response.status_code == 422
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;script&gt;" in response.text

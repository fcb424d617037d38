"""Changing the password or the email address needs a fresh second factor from a user who has
one (API and pages); a user without any factor is not asked (the MFA policy: only API keys,
withdrawals and bank accounts require a factor to exist)."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import unquote

from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from tests.identity.support import PASSWORD, bearer, inbox, login
from tests.mfa.test_api import code_for, enrol_totp, mfa_login, signed_up

STEP_UP = "urn:rampart:problem:step-up-required"
NEW_PASSWORD = "a different long passphrase 97"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _csrf(text: str) -> str:
    match = CSRF.search(text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _stale_mfa_session(
    client: TestClient, container: Container, clock: FrozenClock
) -> tuple[str, str]:
    """A signed-in TOTP user whose last second factor is older than the step-up window."""
    token = signed_up(client, container)
    secret, _ = enrol_totp(client, container, token)
    clock.advance(30)
    done = mfa_login(client, "ann@example.com", kind="totp", code=code_for(container, secret))
    assert done.status_code == 200, done.text
    clock.advance(timedelta(minutes=container.settings.mfa.step_up_minutes + 1))
    return str(done.json()["access_token"]), secret


def _step_up(client: TestClient, container: Container, access: str, secret: str) -> None:
    stepped = client.post(
        "/v1/mfa/step-up",
        headers=bearer(access),
        json={"kind": "totp", "code": code_for(container, secret)},
    )
    assert stepped.status_code == 200, stepped.text


def _password_works(client: TestClient, password: str) -> bool:
    response = client.post(
        "/v1/auth/login", json={"email": "ann@example.com", "password": password}
    )
    return response.status_code == 200


def test_api_password_change_needs_a_fresh_factor(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    access, secret = _stale_mfa_session(client, container, clock)
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    refused = client.post("/v1/me/password", headers=bearer(access), json=body)
    assert refused.status_code == 401
    assert refused.json()["type"] == STEP_UP
    clock.advance(61)  # clear of the sign-in throttle and the MFA limiter
    assert _password_works(client, PASSWORD)
    assert not _password_works(client, NEW_PASSWORD)

    _step_up(client, container, access, secret)
    changed = client.post("/v1/me/password", headers=bearer(access), json=body)
    assert changed.status_code == 204, changed.text
    clock.advance(61)
    assert _password_works(client, NEW_PASSWORD)


def test_api_email_change_needs_a_fresh_factor(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    access, secret = _stale_mfa_session(client, container, clock)
    body = {"password": PASSWORD, "new_email": "ann.new@example.com"}
    refused = client.post("/v1/me/email", headers=bearer(access), json=body)
    assert refused.status_code == 401
    assert refused.json()["type"] == STEP_UP
    assert not inbox(container, "ann.new@example.com")

    _step_up(client, container, access, secret)
    accepted = client.post("/v1/me/email", headers=bearer(access), json=body)
    assert accepted.status_code == 202, accepted.text
    assert any(m.kind == "verify-email" for m in inbox(container, "ann.new@example.com"))


def test_a_user_without_a_factor_is_not_asked_to_step_up(
    client: TestClient, container: Container
) -> None:
    access = signed_up(client, container)
    changed = client.post(
        "/v1/me/password",
        headers=bearer(access),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert changed.status_code == 204, changed.text
    moved = client.post(
        "/v1/me/email",
        headers=bearer(access),
        json={"password": NEW_PASSWORD, "new_email": "ann.new@example.com"},
    )
    assert moved.status_code == 202, moved.text


def test_a_fresh_factor_does_not_replace_the_current_password(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    access, secret = _stale_mfa_session(client, container, clock)
    _step_up(client, container, access, secret)
    wrong = client.post(
        "/v1/me/password",
        headers=bearer(access),
        json={"current_password": "not the password at all", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 401
    assert wrong.json()["type"] != STEP_UP


def _page_sign_in(client: TestClient, container: Container, secret: str) -> None:
    client.cookies.clear()
    page = client.get("/login")
    sent = client.post(
        "/login",
        data={"email": "ann@example.com", "password": PASSWORD, "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert sent.headers["location"] == "/login/second-factor"
    done = client.post(
        "/login/second-factor",
        data={"kind": "totp", "code": code_for(container, secret)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text


def _page_step_up_flow(
    client: TestClient,
    container: Container,
    clock: FrozenClock,
    action: str,
    form: dict[str, str],
    section: str,
) -> str:
    token = signed_up(client, container)
    secret, _ = enrol_totp(client, container, token)
    clock.advance(30)
    _page_sign_in(client, container, secret)
    clock.advance(timedelta(minutes=container.settings.mfa.step_up_minutes + 1))

    security = client.get("/security")
    refused = client.post(
        action, data={**form, "csrf_token": _csrf(security.text)}, follow_redirects=False
    )
    assert refused.status_code == 303
    location = refused.headers["location"]
    assert location.startswith("/security/step-up?next=")
    assert unquote(location.split("next=", 1)[1]) == f"/security#{section}"

    # The step-up page asks for the factor, then sends the user back to the form.
    prompt = client.get(location)
    assert prompt.status_code == 200
    clock.advance(31)
    stepped = client.post(
        "/security/step-up",
        data={
            "kind": "totp",
            "code": code_for(container, secret),
            "next": f"/security#{section}",
            "csrf_token": _csrf(prompt.text),
        },
        follow_redirects=False,
    )
    assert stepped.status_code == 303, stepped.text
    assert stepped.headers["location"] == f"/security#{section}"
    # The step-up gave the session a new cookie, so the form is the one the redirect loads (a
    # page rendered before the step-up carries the old cookie's CSRF token).
    back = client.get(stepped.headers["location"])
    done = client.post(action, data={**form, "csrf_token": _csrf(back.text)})
    assert done.status_code == 200, done.text
    return done.text


def test_page_password_change_asks_for_the_second_factor(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    text = _page_step_up_flow(
        client,
        container,
        clock,
        "/security/password",
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        "password",
    )
    assert "Your password is changed." in text
    clock.advance(61)
    assert login(client, "ann@example.com", NEW_PASSWORD)["status"] == "second_factor_required"


def test_page_email_change_asks_for_the_second_factor(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    text = _page_step_up_flow(
        client,
        container,
        clock,
        "/security/email",
        {"password": PASSWORD, "new_email": "ann.new@example.com"},
        "email",
    )
    assert "Open the link we sent to the new address" in text
    assert any(m.kind == "verify-email" for m in inbox(container, "ann.new@example.com"))

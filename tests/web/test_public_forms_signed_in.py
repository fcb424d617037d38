"""The public forms (sign-up, sign-in, confirm an address, forgotten and reset password) work for a
person who is signed in: the page they are shown carries the session's CSRF token, and the form
accepts it. A forged or missing token is still refused, signed in or not."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from tests.identity.support import PASSWORD, latest, link_token, verified_user

from rampart.bootstrap import Container

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
NEW_PASSWORD = "a brand new page passphrase 9"


def _csrf(page_text: str) -> str:
    match = CSRF_FIELD.search(page_text)
    assert match, "the page has no CSRF field"
    return match.group(1)


def _signed_in(client: TestClient, container: Container, email: str) -> None:
    verified_user(client, container, email)
    page = client.get("/login")
    done = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/security"
    assert client.get("/security").status_code == 200


def test_a_signed_in_person_confirms_a_new_address_from_the_link(
    client: TestClient, container: Container
) -> None:
    _signed_in(client, container, "mover@example.com")
    security = client.get("/security")
    asked = client.post(
        "/security/email",
        data={
            "password": PASSWORD,
            "new_email": "moved@example.com",
            "csrf_token": _csrf(security.text),
        },
    )
    assert asked.status_code == 200, asked.text
    token = link_token(container, "moved@example.com", "verify-email")

    # Same browser, still signed in: the link opens a page whose button works.
    page = client.get(f"/verify-email?token={token}")
    assert page.status_code == 200
    confirmed = client.post("/verify-email", data={"token": token, "csrf_token": _csrf(page.text)})
    assert confirmed.status_code == 200, confirmed.text
    assert "Email confirmed" in confirmed.text
    assert "moved@example.com" in client.get("/security").text


def test_a_signed_in_person_resets_the_password_from_the_link(
    client: TestClient, container: Container
) -> None:
    _signed_in(client, container, "forgetful@example.com")
    forgot = client.get("/forgot-password")
    sent = client.post(
        "/forgot-password",
        data={"email": "forgetful@example.com", "csrf_token": _csrf(forgot.text)},
    )
    assert sent.status_code == 200, sent.text
    token = link_token(container, "forgetful@example.com", "password-reset")
    form = client.get(f"/reset-password?token={token}")
    done = client.post(
        "/reset-password",
        data={"token": token, "password": NEW_PASSWORD, "csrf_token": _csrf(form.text)},
    )
    assert done.status_code == 200, done.text
    assert "Password changed" in done.text
    assert latest(container, "forgetful@example.com", "password-changed")

    # The reset ended every session; the (now stale) cookie does not stop signing in again.
    page = client.get("/login")
    again = client.post(
        "/login",
        data={
            "email": "forgetful@example.com",
            "password": NEW_PASSWORD,
            "csrf_token": _csrf(page.text),
        },
        follow_redirects=False,
    )
    assert again.status_code == 303
    assert again.headers["location"] == "/security"


def test_a_signed_in_person_can_sign_in_again_and_sign_up_another_address(
    client: TestClient, container: Container
) -> None:
    _signed_in(client, container, "twice@example.com")
    page = client.get("/login")
    again = client.post(
        "/login",
        data={"email": "twice@example.com", "password": PASSWORD, "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert again.status_code == 303
    signup = client.get("/signup")
    created = client.post(
        "/signup",
        data={
            "email": "second@example.com",
            "password": PASSWORD,
            "csrf_token": _csrf(signup.text),
        },
    )
    assert created.status_code == 200, created.text
    assert "Check your email" in created.text


@pytest.mark.parametrize("token", ["", "x" * 32, "f" * 64])
def test_signed_in_public_forms_still_refuse_a_forged_token(
    client: TestClient, container: Container, token: str
) -> None:
    _signed_in(client, container, "target@example.com")
    forged = client.post(
        "/forgot-password", data={"email": "target@example.com", "csrf_token": token}
    )
    assert forged.status_code == 403
    assert forged.json()["type"] == "urn:rampart:problem:csrf-failed"


def test_another_sessions_token_does_not_pass_a_public_form(
    client: TestClient, container: Container, app: object
) -> None:
    _signed_in(client, container, "one@example.com")
    theirs = _csrf(client.get("/security").text)
    with TestClient(app, base_url="https://testserver") as other:  # type: ignore[arg-type]
        _signed_in(other, container, "two@example.com")
        refused = other.post(
            "/forgot-password", data={"email": "two@example.com", "csrf_token": theirs}
        )
    assert refused.status_code == 403

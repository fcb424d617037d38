"""Reset and confirmation links: the token leaves the address bar on the first landing (kept in a
short-lived HttpOnly cookie), so history, `Referer` and logs never hold it past that request."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from tests.identity.support import latest, link_token, login, register, verified_user

from rampart.bootstrap import Container
from rampart.web.pages.account import LINK_COOKIE


def _csrf(page_text: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page_text)
    assert match
    return match.group(1)


def test_a_reset_link_lands_then_drops_the_token_from_the_address_and_the_page(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "landing@example.com")
    client.post("/v1/auth/password/forgot", json={"email": "landing@example.com"})
    token = link_token(container, "landing@example.com", "password-reset")

    landed = client.get(f"/reset-password?token={token}", follow_redirects=False)
    assert landed.status_code == 303
    assert landed.headers["location"] == "/reset-password"
    assert landed.headers["cache-control"] == "no-store"
    cookie = landed.headers["set-cookie"]
    assert cookie.startswith(f"{LINK_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "Max-Age=900" in cookie
    assert "SameSite=lax" in cookie

    form = client.get("/reset-password")
    assert form.status_code == 200
    assert token not in form.text
    # The form posts no token: the one from the landing is used.
    done = client.post(
        "/reset-password",
        data={"password": "a fresh browser passphrase 5", "csrf_token": _csrf(form.text)},
    )
    assert done.status_code == 200, done.text
    assert "Password changed" in done.text
    assert latest(container, "landing@example.com", "password-changed")
    assert LINK_COOKIE not in client.cookies
    login(client, "landing@example.com", "a fresh browser passphrase 5")


def test_a_confirmation_link_lands_then_confirms_from_the_cookie(
    client: TestClient, container: Container
) -> None:
    register(client, "confirm-me@example.com")
    token = link_token(container, "confirm-me@example.com", "verify-email")
    landed = client.get(f"/verify-email?token={token}", follow_redirects=False)
    assert landed.status_code == 303
    assert landed.headers["location"] == "/verify-email"
    page = client.get("/verify-email")
    assert token not in page.text
    confirmed = client.post("/verify-email", data={"csrf_token": _csrf(page.text)})
    assert confirmed.status_code == 200, confirmed.text
    assert "Email confirmed" in confirmed.text
    assert LINK_COOKIE not in client.cookies


def test_a_form_without_a_landed_link_is_refused_as_an_invalid_link(
    client: TestClient, container: Container
) -> None:
    page = client.get("/reset-password")
    refused = client.post(
        "/reset-password",
        data={"password": "whatever passphrase 12", "csrf_token": _csrf(page.text)},
    )
    assert refused.status_code == 422
    assert "not valid" in refused.text


def test_a_staff_enrolment_link_lands_then_drops_the_token_from_the_address(
    client: TestClient, container: Container
) -> None:
    with container.uow() as uow:
        user_id = container.identity.accounts.create_user(
            uow, "new-admin@example.com", None, role="ADMIN", verified=True, created_by="test"
        )
        link = container.identity.accounts.staff_enrolment_link(uow, user_id, issued_by="test")
        uow.commit()
    token = link.split("token=", 1)[1]
    landed = client.get(f"/staff/enrol?token={token}", follow_redirects=False)
    assert landed.status_code == 303
    assert landed.headers["location"] == "/staff/enrol"
    page = client.get("/staff/enrol")
    assert page.status_code == 200
    assert "token=" not in str(page.url)
    # The page hands the token to its own script (a data attribute), not to any address.
    assert f'data-token="{token}"' in page.text

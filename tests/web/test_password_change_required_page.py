"""The sign-in page answers an operator-set password with a form to choose one's own."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from tests.identity.support import PASSWORD

from rampart.bootstrap import Container

OWN = "my very own passphrase 51"


def _csrf(page_text: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page_text)
    assert match
    return match.group(1)


def test_an_operator_set_password_leads_to_the_change_form_not_a_session(
    client: TestClient, container: Container
) -> None:
    password_hash = container.identity.hashing.hasher.hash(PASSWORD)
    with container.uow() as uow:
        container.identity.accounts.create_user(
            uow,
            "given@example.com",
            password_hash,
            role="TRADER",
            verified=True,
            created_by="operator:test",
            must_change_password=True,
        )
        uow.commit()
    page = client.get("/login")
    signed = client.post(
        "/login",
        data={"email": "given@example.com", "password": PASSWORD, "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert signed.status_code == 403
    assert "Choose your own password" in signed.text
    assert "__Host-rampart_session" not in signed.cookies
    done = client.post(
        "/login/password-change",
        data={
            "email": "given@example.com",
            "current_password": PASSWORD,
            "new_password": OWN,
            "csrf_token": _csrf(signed.text),
        },
    )
    assert done.status_code == 200, done.text
    assert "Sign in with it now" in done.text
    page = client.get("/login")
    again = client.post(
        "/login",
        data={"email": "given@example.com", "password": OWN, "csrf_token": _csrf(page.text)},
        follow_redirects=False,
    )
    assert again.status_code == 303
    assert again.headers["location"] == "/security"

"""The admin console's user pages in a browser's shoes: an administrator signed in with a
security key finds a trader by address, locks them out and lets them back in, grants a role until
a time and sees it (and the audit log records it); a trader, and an administrator signed in
without the key, are refused; actions that give access back need a fresh step-up."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from fastapi.testclient import TestClient
from tests.access.support import ACCOUNT_PASSWORD, email_of, new_account
from tests.mfa.authenticator import SoftAuthenticator
from tests.support.staff import enrol_security_key, sign_in_with_key, step_up_with_key
from tests.web.test_pages_market import _signed_in_trader

from rampart.access.domain import Role
from rampart.audit.service import SearchQuery
from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock

HTML = {"Accept": "text/html"}


def _admin(client: TestClient, container: Container) -> tuple[dict[str, str], SoftAuthenticator]:
    admin = new_account(container, Role.ADMIN)
    key = enrol_security_key(container, admin)
    tokens = sign_in_with_key(client, email_of(container, admin), ACCOUNT_PASSWORD, key)
    return {**HTML, "Authorization": f"Bearer {tokens['access_token']}"}, key


def _field(page: str, name: str) -> str:
    match = re.search(rf'<dd data-field="{name}">(.*?)</dd>', page, re.S)
    assert match, f"no field {name}"
    return unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip()


def _sign_in(client: TestClient, email: str) -> int:
    return client.post(
        "/v1/auth/login", json={"email": email, "password": ACCOUNT_PASSWORD}
    ).status_code


def test_an_admin_finds_locks_unlocks_and_grants_a_timed_role(
    client: TestClient, container: Container
) -> None:
    trader = new_account(container, Role.TRADER)
    email = email_of(container, trader)
    headers, _key = _admin(client, container)

    listing = client.get("/admin/users", headers=headers)
    assert listing.status_code == 200
    assert 'href="/admin/users"' in listing.text  # the navigation link, for the admin
    found = client.get(
        "/admin/users", params={"email": email.upper()}, headers=headers, follow_redirects=False
    )
    assert found.status_code == 303
    assert found.headers["location"] == f"/admin/users/{trader}"
    missing = client.get("/admin/users", params={"email": "nobody@example.com"}, headers=headers)
    assert missing.status_code == 404
    assert "No account has that address" in missing.text

    page = client.get(f"/admin/users/{trader}", headers=headers)
    assert page.status_code == 200, page.text
    assert _field(page.text, "status") == "active"
    assert _field(page.text, "roles") == "TRADER"

    unconfirmed = client.post(
        f"/admin/users/{trader}", data={"action": "lock", "reason": "fraud report"}, headers=headers
    )
    assert unconfirmed.status_code == 422
    assert _sign_in(client, email) == 200

    locked = client.post(
        f"/admin/users/{trader}",
        data={"action": "lock", "reason": "fraud report 123", "confirm": "yes"},
        headers=headers,
        follow_redirects=False,
    )
    assert locked.status_code == 303, locked.text
    page = client.get(locked.headers["location"], headers=headers)
    assert _field(page.text, "status") == "locked"
    assert "The account is locked" in page.text
    assert _sign_in(client, email) != 200

    unlocked = client.post(
        f"/admin/users/{trader}",
        data={"action": "unlock", "reason": "cleared by review", "confirm": "yes"},
        headers=headers,
        follow_redirects=False,
    )
    assert unlocked.status_code == 303, unlocked.text
    assert _sign_in(client, email) == 200

    until = (container.clock.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    granted = client.post(
        f"/admin/users/{trader}",
        data={
            "action": "grant",
            "role": "SUPPORT",
            "until": until,
            "reason": "covering the desk this week",
            "confirm": "yes",
        },
        headers=headers,
        follow_redirects=False,
    )
    assert granted.status_code == 303, granted.text
    page = client.get(f"/admin/users/{trader}", headers=headers).text
    assert _field(page, "roles") == "SUPPORT, TRADER"
    row = re.search(r'<tr data-role="SUPPORT" data-active="yes">(.*?)</tr>', page, re.S)
    assert row, page
    assert "covering the desk this week" in row.group(1)
    assert until.replace("T", " ") in row.group(1)
    with container.db.read() as session:
        grants = [g for g in container.access.grants_of(session, trader) if g.role == "SUPPORT"]
    assert grants
    assert grants[0].expires_at is not None
    assert grants[0].reason == "covering the desk this week"

    entries, _ = container.audit.search(
        SearchQuery(subject=f"user:{trader}", action="access.role.granted", limit=10)
    )
    assert entries
    assert entries[-1]["details"]["role"] == "SUPPORT"

    revoked = client.post(
        f"/admin/users/{trader}",
        data={"action": "revoke", "role": "SUPPORT", "reason": "desk covered", "confirm": "yes"},
        headers=headers,
        follow_redirects=False,
    )
    assert revoked.status_code == 303, revoked.text
    page = client.get(f"/admin/users/{trader}", headers=headers).text
    assert _field(page, "roles") == "TRADER"


def test_giving_access_back_needs_a_fresh_step_up_and_keeps_what_was_typed(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    trader = new_account(container, Role.TRADER)
    headers, key = _admin(client, container)
    clock.advance(timedelta(minutes=5, seconds=1))
    form = {
        "action": "grant",
        "role": "SUPPORT",
        "reason": "covering the desk",
        "confirm": "yes",
    }
    due = client.post(f"/admin/users/{trader}", data=form, headers=headers)
    assert due.status_code == 401
    assert 'href="/security/step-up?next=' in due.text
    assert 'value="covering the desk"' in due.text
    with container.db.read() as session:
        assert not [g for g in container.access.grants_of(session, trader) if g.role == "SUPPORT"]
    # Locking only takes access away: no step-up.
    locked = client.post(
        f"/admin/users/{trader}",
        data={"action": "lock", "reason": "fraud report", "confirm": "yes"},
        headers=headers,
        follow_redirects=False,
    )
    assert locked.status_code == 303

    step_up_with_key(client, headers, key)
    granted = client.post(
        f"/admin/users/{trader}", data=form, headers=headers, follow_redirects=False
    )
    assert granted.status_code == 303, granted.text


def test_a_trader_gets_a_403_page_and_no_link(client: TestClient, container: Container) -> None:
    user_id = _signed_in_trader(client, container)
    assert 'href="/admin/users"' not in client.get("/portfolio").text
    for path in ("/admin/users", f"/admin/users/{user_id}"):
        refused = client.get(path, headers=HTML)
        assert refused.status_code == 403, path
        assert refused.headers["content-type"].startswith("text/html")


def test_an_admin_without_a_security_key_sign_in_is_refused(
    client: TestClient, container: Container
) -> None:
    trader = new_account(container, Role.TRADER)
    admin = new_account(container, Role.ADMIN)
    signed = client.post(
        "/v1/auth/login", json={"email": email_of(container, admin), "password": ACCOUNT_PASSWORD}
    )
    assert signed.status_code == 200, signed.text
    headers = {**HTML, "Authorization": f"Bearer {signed.json()['access_token']}"}
    assert client.get(f"/admin/users/{trader}", headers=headers).status_code == 403
    refused = client.post(
        f"/admin/users/{trader}",
        data={"action": "lock", "reason": "fraud report", "confirm": "yes"},
        headers=headers,
    )
    assert refused.status_code == 403
    with container.db.read() as session:
        assert container.identity.accounts.get(session, trader).status == "active"


def test_the_list_shows_the_newest_accounts(client: TestClient, container: Container) -> None:
    trader = new_account(container, Role.TRADER)
    headers, _key = _admin(client, container)
    page = client.get("/admin/users", headers=headers).text
    assert f'<tr data-user="{trader}">' in page
    assert email_of(container, trader) in page


def test_a_factor_reset_is_asked_by_one_admin_and_approved_by_another(
    client: TestClient, container: Container
) -> None:
    trader = new_account(container, Role.TRADER)
    enrol_security_key(container, trader)
    asker, _ = _admin(client, container)
    page = client.get(f"/admin/users/{trader}", headers=asker).text
    assert _field(page, "factors").startswith("webauthn")

    asked = client.post(
        f"/admin/users/{trader}",
        data={
            "action": "mfa-reset",
            "method": "video-call",
            "reference": "TICKET-4411",
            "reason": "lost phone and key",
            "confirm": "yes",
        },
        headers=asker,
        follow_redirects=False,
    )
    assert asked.status_code == 303, asked.text
    page = client.get(f"/admin/users/{trader}", headers=asker).text
    request_id = re.search(r'class="reset-approval" data-request="([^"]+)"', page)
    assert request_id
    approval = {"action": "mfa-approve", "request_id": request_id.group(1), "confirm": "yes"}
    # Four eyes: the one who asked cannot approve.
    refused = client.post(f"/admin/users/{trader}", data=approval, headers=asker)
    assert refused.status_code == 403
    assert _field(client.get(f"/admin/users/{trader}", headers=asker).text, "factors") != ""
    with container.db.read() as session:
        assert container.mfa.summary(session, trader).enrolled

    approver, _ = _admin(client, container)
    approved = client.post(
        f"/admin/users/{trader}", data=approval, headers=approver, follow_redirects=False
    )
    assert approved.status_code == 303, approved.text
    page = client.get(f"/admin/users/{trader}", headers=approver).text
    assert _field(page, "factors").startswith("none")
    assert "reset-approval" not in page


def test_a_password_reset_link_is_sent_and_audited(
    client: TestClient, container: Container
) -> None:
    trader = new_account(container, Role.TRADER)
    headers, _key = _admin(client, container)
    sent = client.post(
        f"/admin/users/{trader}",
        data={"action": "password-reset", "reason": "user called in", "confirm": "yes"},
        headers=headers,
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    page = client.get(sent.headers["location"], headers=headers).text
    assert "A password reset link is on its way" in page
    entries, _ = container.audit.search(SearchQuery(subject=f"user:{trader}", limit=50))
    assert "identity.password.reset_sent_by_operator" in [e["action"] for e in entries]

"""Staff permissions need a security key (issue #14, item 4): an ADMIN signed in with a password
(or a code) cannot halt the market; a sign-in with WebAuthn can, and each sensitive staff action
needs the key again within five minutes; API keys never act as staff; staff sessions idle out
sooner than traders'."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from rampart.access.domain import (
    ALL_PERMISSIONS,
    BUILTIN_ROLES,
    SCOPE_PERMISSIONS,
    STAFF_PERMISSIONS,
    Role,
    permissions_for,
    scoped_permissions,
)
from rampart.bootstrap import Container
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from rampart.kernel.ids import new_id
from tests.access.support import (
    ACCOUNT_PASSWORD,
    as_staff,
    as_user,
    email_of,
    install,
    new_account,
    new_staff,
)
from tests.support.staff import enrol_security_key, sign_in_with_key, step_up_with_key

STAFF_MFA = "urn:rampart:problem:staff-mfa-required"
STEP_UP = "urn:rampart:problem:step-up-required"
HALT = {"scope": "market", "reason": "outage"}


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


def _password_login(client: TestClient, email: str) -> dict[str, Any]:
    response = client.post("/v1/auth/login", json={"email": email, "password": ACCOUNT_PASSWORD})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_an_admin_signed_in_with_a_password_alone_cannot_halt_the_market(
    client: TestClient, container: Container
) -> None:
    admin = new_account(container, Role.ADMIN)
    tokens = _password_login(client, email_of(container, admin))
    assert tokens["status"] == "complete"
    refused = client.post("/v1/risk/halts", json=HALT, headers=_bearer(tokens))
    assert refused.status_code == 403
    assert refused.json()["type"] == STAFF_MFA
    # What the role gives a trader too still works; the staff permissions are not there.
    me = client.get("/api/v1/access/me", headers=_bearer(tokens)).json()
    assert "account:view" in me["permissions"]
    assert not STAFF_PERMISSIONS & set(me["permissions"])
    # Nor can the password alone add a key of its own and become staff that way.
    begin = client.post("/v1/mfa/webauthn/registrations", headers=_bearer(tokens))
    assert begin.status_code == 403
    assert begin.json()["type"] == STAFF_MFA
    totp = client.post("/v1/mfa/totp", headers=_bearer(tokens))
    assert totp.json()["type"] == STAFF_MFA


def test_a_sign_in_with_a_code_does_not_make_staff_permissions_count(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    import pyotp

    admin = new_account(container, Role.ADMIN)
    email = email_of(container, admin)
    key = enrol_security_key(container, admin)
    with container.uow() as uow:
        enrolment = container.mfa.begin_totp(uow, admin, email)
        container.mfa.confirm_totp(uow, admin, pyotp.TOTP(enrolment.secret).at(clock.now()))
        uow.commit()
    clock.advance(31)
    pending = _password_login(client, email)["pending_login"]
    done = client.post(
        "/v1/auth/login/mfa",
        json={
            "pending_token": pending,
            "kind": "totp",
            "code": pyotp.TOTP(enrolment.secret).at(clock.now()),
        },
    )
    assert done.status_code == 200, done.text
    headers = _bearer(done.json())
    refused = client.post("/v1/risk/halts", json=HALT, headers=headers)
    assert refused.json()["type"] == STAFF_MFA
    # A step-up with the security key makes the same session count as staff.
    step_up_with_key(client, headers, key)
    assert client.post("/v1/risk/halts", json=HALT, headers=headers).status_code == 201


def test_a_staff_sign_in_with_a_security_key_halts_and_needs_it_again_after_five_minutes(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    compliance = new_account(container, Role.COMPLIANCE)
    key = enrol_security_key(container, compliance)
    headers = _bearer(
        sign_in_with_key(client, email_of(container, compliance), ACCOUNT_PASSWORD, key)
    )
    symbol = {"scope": "symbol", "target": "ACME", "reason": "bad print"}
    assert client.post("/v1/risk/halts", json=symbol, headers=headers).status_code == 201
    clock.advance(timedelta(minutes=5, seconds=1))
    stale = client.post("/v1/risk/halts", json=HALT, headers=headers)
    assert stale.status_code == 401
    assert stale.json()["type"] == STEP_UP
    assert stale.json()["factor"] == "webauthn"
    # Reading stays open to the signed-in staff member; only the action wants the key again.
    assert client.get("/v1/risk/halts", headers=headers).status_code == 200
    step_up_with_key(client, headers, key)
    assert client.post("/v1/risk/halts", json=HALT, headers=headers).status_code == 201


def _sensitive_requests(users: dict[str, str]) -> list[tuple[str, str, str, dict[str, Any] | None]]:
    """(who, method, path, body) of every sensitive staff action over the API."""
    target = users["trader"]
    reason = {"reason": "a reason long enough"}
    halt = new_id()  # no such halt: the step-up is checked first
    return [
        ("compliance", "POST", "/v1/risk/halts", HALT),
        ("compliance", "PUT", "/v1/risk/states", {"state": "reducing", "reason": "r"}),
        ("compliance", "POST", f"/v1/risk/halts/{halt}/resume-request", {"reason": "cleared"}),
        ("compliance", "POST", f"/v1/risk/halts/{halt}/approve", None),
        ("admin", "PUT", "/v1/risk/limits", {"limits": {"max_order_quantity": "5"}, "reason": "r"}),
        ("admin", "POST", f"/api/v1/access/users/{target}/grants", {"role": "SUPPORT", **reason}),
        ("admin", "POST", f"/api/v1/access/users/{target}/roles/TRADER/revoke", reason),
        ("admin", "PUT", "/api/v1/access/roles/desk-lead", {"permissions": ["risk:limits"]}),
        ("admin", "POST", f"/v1/admin/users/{target}/unlock", reason),
        ("admin", "POST", f"/v1/admin/users/{target}/password-reset", reason),
        ("admin", "POST", f"/v1/admin/users/{target}/staff-enrolment", None),
        ("admin", "POST", "/v1/admin/signing-keys/rotate", None),
        (
            "support",
            "POST",
            f"/v1/admin/users/{target}/mfa/reset",
            {"verification_method": "video-call", "verification_reference": "CASE-1", **reason},
        ),
    ]


def test_every_sensitive_staff_action_needs_a_security_key_within_five_minutes(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    install(container)
    users = {
        "compliance": new_staff(container, "COMPLIANCE"),
        "admin": new_staff(container, "ADMIN"),
        "support": new_staff(container, "SUPPORT"),
        "trader": new_account(container, "TRADER"),
    }
    now = clock.now().timestamp()
    for who, method, path, body in _sensitive_requests(users):
        user = users[who]
        # A sign-in with the key six minutes ago and a code just now: not enough.
        stale = as_user(user, mfa_at=now, webauthn_at=now - 6 * 60)
        refused = client.request(method, path, json=body, headers=stale)
        assert refused.status_code == 401, (path, refused.text)
        assert refused.json()["type"] == STEP_UP, path
        assert refused.json()["factor"] == "webauthn", path
        # No key at all in this sign-in: the staff permission itself is withheld.
        if who != "support":  # the reset route is open to any sign-in, then checks roles
            plain = client.request(method, path, json=body, headers=as_user(user, mfa_at=now))
            assert plain.status_code == 403, (path, plain.text)
            assert plain.json()["type"] == STAFF_MFA, path
        # With the key just now the action goes through to its own checks.
        fresh = client.request(method, path, json=body, headers=as_staff(container, user))
        assert fresh.status_code not in (401, 403), (path, fresh.text)


@given(
    roles=st.sets(st.sampled_from(sorted(BUILTIN_ROLES))),
    scopes=st.sets(st.sampled_from([*SCOPE_PERMISSIONS, "admin", "halt"])),
    extra=st.sets(st.sampled_from(sorted(ALL_PERMISSIONS))),
)
def test_no_api_key_scope_ever_carries_a_staff_permission(
    roles: set[str], scopes: set[str], extra: set[str]
) -> None:
    owner = permissions_for(roles) | frozenset(extra)
    assert not scoped_permissions(owner, frozenset(scopes)) & STAFF_PERMISSIONS


def test_staff_browser_sessions_idle_out_after_fifteen_minutes_and_traders_later(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    from tests.web.test_pages_account import _sign_in

    trader = new_account(container, Role.TRADER)
    staff = new_account(container, Role.SUPPORT)
    trader_client = TestClient(client.app, base_url="https://testserver")
    assert _sign_in(trader_client, email_of(container, trader), ACCOUNT_PASSWORD).status_code == 303
    assert _sign_in(client, email_of(container, staff), ACCOUNT_PASSWORD).status_code == 303
    assert client.get("/v1/me").status_code == 200
    clock.advance(timedelta(minutes=15, seconds=1))
    gone = client.get("/v1/me")
    assert gone.status_code == 401
    assert gone.json()["type"] == "urn:rampart:problem:invalid-session"
    assert trader_client.get("/v1/me").status_code == 200

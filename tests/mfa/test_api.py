"""MFA end to end through HTTP: the second step of signing in, step-up, recovery, pages."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.identity.mfa.domain import totp_code, totp_step
from rampart.kernel.clock import FrozenClock
from tests.access.support import as_staff, install, new_staff
from tests.identity.support import PASSWORD, bearer, login, verified_user
from tests.mfa.support import last_code
from tests.support.staff import enrol_security_key, sign_in_with_key

STEP_UP = "urn:rampart:problem:step-up-required"


def code_for(container: Container, secret: str, offset: int = 0) -> str:
    import base64

    seed = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return totp_code(seed, totp_step(container.clock.now().timestamp()) + offset)


def enrol_totp(client: TestClient, container: Container, token: str) -> tuple[str, list[str]]:
    begun = client.post("/v1/mfa/totp", headers=bearer(token))
    assert begun.status_code == 200, begun.text
    secret = begun.json()["secret"]
    assert begun.json()["otpauth_uri"].startswith("otpauth://totp/")
    confirmed = client.post(
        "/v1/mfa/totp/confirm", headers=bearer(token), json={"code": code_for(container, secret)}
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["backup_codes"]


def mfa_login(client: TestClient, email: str, **factor: Any) -> Any:
    pending = login(client, email)
    assert pending["status"] == "second_factor_required"
    return client.post(
        "/v1/auth/login/mfa", json={"pending_token": pending["pending_login"], **factor}
    )


def signed_up(client: TestClient, container: Container, email: str = "ann@example.com") -> str:
    verified_user(client, container, email)
    first = login(client, email)
    assert first["status"] == "complete"
    return str(first["access_token"])


def test_with_totp_a_password_alone_issues_nothing(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    token = signed_up(client, container)
    secret, backup = enrol_totp(client, container, token)
    assert len(backup) == 10
    clock.advance(30)

    pending = login(client, "ann@example.com")
    assert pending["status"] == "second_factor_required"
    assert "access_token" not in pending
    assert "totp" in pending["factors"]

    wrong = client.post(
        "/v1/auth/login/mfa",
        json={"pending_token": pending["pending_login"], "kind": "totp", "code": "000000"},
    )
    assert wrong.status_code == 401
    assert wrong.json()["type"] == "urn:rampart:problem:mfa-invalid"
    code = code_for(container, secret)
    done = client.post(
        "/v1/auth/login/mfa",
        json={"pending_token": pending["pending_login"], "kind": "totp", "code": code},
    )
    assert done.status_code == 200, done.text
    assert client.get("/v1/me", headers=bearer(done.json()["access_token"])).status_code == 200
    # The pending sign-in is spent, and the code cannot serve a second sign-in.
    again = client.post(
        "/v1/auth/login/mfa",
        json={"pending_token": pending["pending_login"], "kind": "totp", "code": code},
    )
    assert again.status_code == 401
    replay = mfa_login(client, "ann@example.com", kind="totp", code=code)
    assert replay.status_code == 401


def test_five_wrong_factors_void_the_pending_sign_in(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    token = signed_up(client, container)
    secret, _ = enrol_totp(client, container, token)
    clock.advance(30)
    pending = login(client, "ann@example.com")["pending_login"]
    for _ in range(5):
        clock.advance(61)  # keep clear of the per-user MFA rate limit
        client.post(
            "/v1/auth/login/mfa", json={"pending_token": pending, "kind": "totp", "code": "000000"}
        )
    late = client.post(
        "/v1/auth/login/mfa",
        json={"pending_token": pending, "kind": "totp", "code": code_for(container, secret)},
    )
    assert late.status_code == 401
    assert late.json()["type"] == "urn:rampart:problem:invalid-pending-login"


def test_sign_in_with_a_backup_code_then_it_is_spent(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    token = signed_up(client, container)
    _, backup = enrol_totp(client, container, token)
    done = mfa_login(client, "ann@example.com", kind="backup_code", code=backup[0])
    assert done.status_code == 200, done.text
    status = client.get("/v1/mfa", headers=bearer(done.json()["access_token"])).json()
    assert status["backup_codes_remaining"] == 9
    clock.advance(61)
    assert (
        mfa_login(client, "ann@example.com", kind="backup_code", code=backup[0]).status_code == 401
    )


def test_email_code_sign_in_is_bound_to_that_sign_in(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    token = signed_up(client, container)
    assert client.post("/v1/mfa/email", headers=bearer(token)).status_code == 200
    confirmed = client.post(
        "/v1/mfa/email/confirm", headers=bearer(token), json={"code": last_code(container)}
    )
    assert confirmed.status_code == 200, confirmed.text
    clock.advance(31)
    first = login(client, "ann@example.com")["pending_login"]
    sent = client.post(
        "/v1/auth/login/mfa/challenge", json={"pending_token": first, "kind": "email"}
    )
    assert sent.status_code == 200
    assert "sent_to" in sent.json()
    code = last_code(container, to="ann@example.com")
    second = login(client, "ann@example.com")["pending_login"]
    stolen = client.post(
        "/v1/auth/login/mfa", json={"pending_token": second, "kind": "email", "code": code}
    )
    assert stolen.status_code == 401
    done = client.post(
        "/v1/auth/login/mfa", json={"pending_token": first, "kind": "email", "code": code}
    )
    assert done.status_code == 200, done.text


def test_step_up_is_required_then_accepted(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    token = signed_up(client, container)
    secret, _ = enrol_totp(client, container, token)
    clock.advance(30)
    done = mfa_login(client, "ann@example.com", kind="totp", code=code_for(container, secret))
    access = done.json()["access_token"]
    assert client.get("/v1/mfa", headers=bearer(access)).json()["step_up"]["fresh"]

    clock.advance(timedelta(minutes=6))
    refused = client.delete("/v1/mfa/totp", headers=bearer(access))
    assert refused.status_code == 401
    assert refused.json()["type"] == STEP_UP
    created = client.post("/api/v1/apikeys", headers=bearer(access), json={"scopes": ["read"]})
    assert created.status_code == 401
    assert created.json()["type"] == STEP_UP

    stepped = client.post(
        "/v1/mfa/step-up",
        headers=bearer(access),
        json={"kind": "totp", "code": code_for(container, secret)},
    )
    assert stepped.status_code == 200, stepped.text
    created = client.post("/api/v1/apikeys", headers=bearer(access), json={"scopes": ["read"]})
    assert created.status_code == 201, created.text
    assert client.delete("/v1/mfa/totp", headers=bearer(access)).status_code == 204


def test_step_up_with_a_wrong_code_is_refused(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    token = signed_up(client, container)
    enrol_totp(client, container, token)
    clock.advance(timedelta(minutes=6))
    wrong = client.post(
        "/v1/mfa/step-up", headers=bearer(token), json={"kind": "totp", "code": "123456"}
    )
    assert wrong.status_code == 401
    assert client.delete("/v1/mfa/totp", headers=bearer(token)).json()["type"] == STEP_UP


def test_support_reset_starts_a_cooling_period_that_blocks_api_keys(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    token = signed_up(client, container)
    enrol_totp(client, container, token)
    user_id = client.get("/v1/me", headers=bearer(token)).json()["id"]

    support_token = signed_up(client, container, "sam@example.com")
    support_id = client.get("/v1/me", headers=bearer(support_token)).json()["id"]
    with container.uow() as uow:
        container.access.assign_role(uow, support_id, "SUPPORT", reason="test")
        uow.commit()
    # Support signs in with a security key: a staff role counts only with one.
    support_key = enrol_security_key(container, support_id)
    clock.advance(30)
    support_access = sign_in_with_key(client, "sam@example.com", PASSWORD, support_key)[
        "access_token"
    ]
    body = {
        "verification_method": "video-call",
        "verification_reference": "CASE-7",
        "reason": "Lost phone and backup codes",
    }
    # A trader cannot do it.
    assert client.post(
        f"/v1/admin/users/{support_id}/mfa/reset", headers=bearer(token), json=body
    ).status_code in (401, 403)
    asked = client.post(
        f"/v1/admin/users/{user_id}/mfa/reset", headers=bearer(support_access), json=body
    )
    # Four eyes (deliberate change, #25 item 4): the request alone removes nothing...
    assert asked.status_code == 202, asked.text
    approve = f"/v1/admin/mfa/reset-requests/{asked.json()['request_id']}/approve"
    assert login(client, "ann@example.com")["status"] != "complete"
    # ...the person who asked cannot approve it...
    own = client.post(approve, headers=bearer(support_access))
    assert own.status_code == 403
    assert own.json()["type"] == "urn:rampart:problem:four-eyes-required"
    # ...a second staff member, with a security key of their own, can, once.
    install(container)  # the test authenticator: the second staff member's key sign-in
    second = new_staff(container, "SUPPORT")
    reset = client.post(approve, headers=as_staff(container, second))
    assert reset.status_code == 200, reset.text
    assert client.post(approve, headers=as_staff(container, second)).status_code == 404

    # The user signs in with the password alone, enrols afresh and is stepped-up...
    clock.advance(61)
    fresh = login(client, "ann@example.com")
    assert fresh["status"] == "complete"
    access = fresh["access_token"]
    secret, _ = enrol_totp(client, container, access)
    clock.advance(31)
    assert (
        client.post(
            "/v1/mfa/step-up",
            headers=bearer(access),
            json={"kind": "totp", "code": code_for(container, secret)},
        ).status_code
        == 200
    )
    # ...and still cannot create an API key until the 24 hours are over.
    blocked = client.post("/api/v1/apikeys", headers=bearer(access), json={"scopes": ["read"]})
    assert blocked.status_code == 403
    assert blocked.json()["type"] == "urn:rampart:problem:mfa-cooling-period"


def test_pages_sign_in_with_totp_and_carry_the_csp_nonce(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    token = signed_up(client, container)
    secret, _ = enrol_totp(client, container, token)
    clock.advance(30)
    client.cookies.clear()
    page = client.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    sent = client.post(
        "/login",
        data={"email": "ann@example.com", "password": PASSWORD, "csrf_token": csrf.group(1)},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert sent.headers["location"] == "/login/second-factor"
    assert "__Host-rampart_session" not in sent.cookies
    challenge = client.get("/login/second-factor")
    assert challenge.status_code == 200
    assert "Authenticator app" in challenge.text
    done = client.post(
        "/login/second-factor",
        data={"kind": "totp", "code": code_for(container, secret)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/security"
    manage = client.get("/security/mfa")
    assert manage.status_code == 200
    assert "Security keys and passkeys" in manage.text
    nonce = manage.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'<script src="/static/mfa-webauthn.js" nonce="{nonce}"' in manage.text
    assert client.get("/static/mfa-webauthn.js").status_code == 200


def test_management_page_needs_a_session(client: TestClient) -> None:
    response = client.get("/security/mfa", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"

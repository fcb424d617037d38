"""Sign in for real, as a person does, and step up. For tests that act across the whole API (the
contract, hostile input).

A trader signs in with a password and an authenticator app enrolled over the API. Staff sign in
with a password and a security key (the soft WebAuthn authenticator, enrolled as the enrolment
link does): staff permissions count only for a sign-in that proved a security key."""

from __future__ import annotations

import pyotp
from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from tests.access.support import ACCOUNT_PASSWORD, new_account
from tests.mfa.authenticator import SoftAuthenticator
from tests.trading.support import fund

#: Staff: every role but the trader's, so that staff routes are reached beyond their 403.
STAFF_ROLES = ("ADMIN", "COMPLIANCE", "SUPPORT")


def _email(container: Container, user_id: str) -> str:
    with container.db.read() as session:
        return str(container.identity.accounts.get(session, user_id).email)


def bearer_with_key(client: TestClient, container: Container, user_id: str) -> dict[str, str]:
    """Bearer headers of `user_id` signed in with a password and a security key, stepped up."""
    key = SoftAuthenticator()
    origin = container.mfa.relying_party.origin
    with container.uow() as uow:
        ceremony = container.mfa.begin_webauthn_registration(uow, user_id, "staff")
        uow.commit()
    with container.uow() as uow:
        check = container.mfa.finish_webauthn_registration(
            uow,
            user_id,
            ceremony.challenge_id,
            key.register(ceremony.options, origin=origin),
            "Key",
        )
        uow.commit()
    check.raise_for_failure()
    first = client.post(
        "/v1/auth/login",
        json={"email": _email(container, user_id), "password": ACCOUNT_PASSWORD},
    )
    assert first.status_code == 200, first.text
    pending = first.json()["pending_login"]
    challenge = client.post(
        "/v1/auth/login/mfa/challenge", json={"pending_token": pending, "kind": "webauthn"}
    )
    assert challenge.status_code == 200, challenge.text
    done = client.post(
        "/v1/auth/login/mfa",
        json={
            "pending_token": pending,
            "kind": "webauthn",
            "challenge_id": challenge.json()["challenge_id"],
            "credential": key.sign(challenge.json()["options"], origin=origin),
        },
    )
    assert done.status_code == 200, done.text
    headers = {"Authorization": f"Bearer {done.json()['access_token']}"}
    stepped_challenge = client.post(
        "/v1/mfa/step-up/challenge", json={"kind": "webauthn"}, headers=headers
    )
    assert stepped_challenge.status_code == 200, stepped_challenge.text
    stepped = client.post(
        "/v1/mfa/step-up",
        json={
            "kind": "webauthn",
            "challenge_id": stepped_challenge.json()["challenge_id"],
            "credential": key.sign(stepped_challenge.json()["options"], origin=origin),
        },
        headers=headers,
    )
    assert stepped.status_code == 200, stepped.text
    return headers


def bearer_with_mfa(client: TestClient, container: Container, user_id: str) -> dict[str, str]:
    """Bearer headers of `user_id` after a real sign-in, TOTP enrolment and a step-up."""
    login = client.post(
        "/v1/auth/login", json={"email": _email(container, user_id), "password": ACCOUNT_PASSWORD}
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    begun = client.post("/v1/mfa/totp", headers=headers)
    assert begun.status_code == 200, begun.text
    totp = pyotp.TOTP(begun.json()["secret"])
    step = int(container.clock.now().timestamp() // totp.interval)
    confirmed = client.post(
        "/v1/mfa/totp/confirm",
        headers=headers,
        json={"code": totp.at((step - 1) * totp.interval)},
    )
    assert confirmed.status_code == 200, confirmed.text
    # The app is confirmed with the code of the step before (still accepted, one step late),
    # so the current one, never used, proves the factor again.
    stepped = client.post(
        "/v1/mfa/step-up",
        headers=headers,
        json={"kind": "totp", "code": totp.at(step * totp.interval)},
    )
    assert stepped.status_code == 200, stepped.text
    return headers


ROLES = {"trader": ("TRADER",), "staff": STAFF_ROLES, "everyone": ("TRADER", *STAFF_ROLES)}


def signed_in(client: TestClient, container: Container, who: str) -> dict[str, str]:
    """Bearer headers of a new account signed in with a second factor: a funded trader
    (`who="trader"`), a member of staff (`"staff"`), or one holding every role (`"everyone"`)."""
    first, *others = ROLES[who]
    user_id = new_account(container, first)
    with container.uow() as uow:
        for role in others:
            container.access.assign_role(uow, user_id, role)
        uow.commit()
    if "TRADER" in ROLES[who]:
        fund(container, user_id, "100000")
    if who == "trader":
        return bearer_with_mfa(client, container, user_id)
    return bearer_with_key(client, container, user_id)

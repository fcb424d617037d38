"""Staff users in tests: a real security key (the soft WebAuthn authenticator) enrolled through the
MFA service, and sign-ins that carry it.

Staff permissions count only for a sign-in that proved WebAuthn (`person_principal`), and
sensitive staff actions need that proof within `mfa.staff_step_up_minutes`. Tests about the
staff's subject (halts, limits, grants) use these helpers; tests about the rule itself use the
real sign-in and step-up flows (`sign_in_with_key`, `step_up_with_key`).
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from tests.mfa.authenticator import SoftAuthenticator


def enrol_security_key(container: Container, user_id: str) -> SoftAuthenticator:
    """Register a fresh soft security key for the user, as the enrolment page does."""
    key = SoftAuthenticator()
    origin = container.mfa.relying_party.origin
    with container.uow() as uow:
        ceremony = container.mfa.begin_webauthn_registration(uow, user_id, f"user {user_id[:8]}")
        uow.commit()
    response = key.register(ceremony.options, origin=origin)
    with container.uow() as uow:
        check = container.mfa.finish_webauthn_registration(
            uow, user_id, ceremony.challenge_id, response, "Key"
        )
        uow.commit()
    check.raise_for_failure()
    return key


def sign_in_with_key(
    client: TestClient, email: str, password: str, key: SoftAuthenticator
) -> dict[str, Any]:
    """The API sign-in of a staff member: password, then the security key. Returns the tokens."""
    origin = client.app.state.container.mfa.relying_party.origin  # type: ignore[attr-defined]
    first = client.post("/v1/auth/login", json={"email": email, "password": password})
    assert first.status_code == 200, first.text
    pending = first.json()["pending_login"]
    challenge = client.post(
        "/v1/auth/login/mfa/challenge", json={"pending_token": pending, "kind": "webauthn"}
    ).json()
    done = client.post(
        "/v1/auth/login/mfa",
        json={
            "pending_token": pending,
            "kind": "webauthn",
            "challenge_id": challenge["challenge_id"],
            "credential": key.sign(challenge["options"], origin=origin),
        },
    )
    assert done.status_code == 200, done.text
    return dict(done.json())


def step_up_with_key(client: TestClient, headers: dict[str, str], key: SoftAuthenticator) -> None:
    """A WebAuthn step-up of the signed-in session (what sensitive staff actions need)."""
    origin = client.app.state.container.mfa.relying_party.origin  # type: ignore[attr-defined]
    challenge = client.post(
        "/v1/mfa/step-up/challenge", json={"kind": "webauthn"}, headers=headers
    ).json()
    done = client.post(
        "/v1/mfa/step-up",
        json={
            "kind": "webauthn",
            "challenge_id": challenge["challenge_id"],
            "credential": key.sign(challenge["options"], origin=origin),
        },
        headers=headers,
    )
    assert done.status_code == 200, done.text

"""Crypto-shredding a person ends every credential of theirs in the shred's own transaction, and
a credential whose sealed secret no longer opens is a failed authentication (401), never a 500.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import update

from rampart.bootstrap import Container
from rampart.identity.mfa.domain import FactorKind
from rampart.identity.mfa.service import FactorResponse
from rampart.kernel.clock import FrozenClock
from rampart.vault.db import UserKeyRow
from tests.access.support import ACCOUNT_PASSWORD, email_of, new_account
from tests.apikeys.test_signed_requests import WHOAMI, bot, create_key, problem
from tests.identity.support import bearer
from tests.mfa.support import totp_now


def _shred(container: Container, user: str, *, commit: bool = True) -> None:
    with container.uow() as uow:
        container.vault.shred_user(uow, user)
        if commit:
            uow.commit()


def _destroy_keys_behind_the_services(container: Container, user: str) -> None:
    """The user's vault keys gone with nothing else told: a shred from before shredding ended
    credentials, or a damaged key table. What each credential does then is the defence."""
    with container.uow() as uow:
        uow.session.execute(
            update(UserKeyRow).where(UserKeyRow.user_id == user).values(wrapped_key=None)
        )
        uow.commit()
    container.vault.forget_cached_keys()


def _sign_in(client: TestClient, email: str) -> dict[str, str]:
    response = client.post("/v1/auth/login", json={"email": email, "password": ACCOUNT_PASSWORD})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_shredded_owners_key_answers_401_not_500(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    signer = bot(client, clock, key, secret=key["secret"])
    assert signer.get(WHOAMI).status_code == 200

    _shred(container, user)
    for path in (WHOAMI, "/v1/me"):
        response = signer.get(path)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "vault" not in problem(response)


def test_shredding_ends_sessions_refresh_tokens_and_keys_with_its_own_commit(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    email = email_of(container, user)
    tokens = _sign_in(client, email)
    key = create_key(client, user, scopes=["read"])
    signer = bot(client, clock, key, secret=key["secret"])

    # A shred that rolls back ends nothing: revocation is part of the same transaction.
    _shred(container, user, commit=False)
    assert client.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 200
    assert signer.get(WHOAMI).status_code == 200
    with container.db.read() as session:
        assert all(k.revoked_at is None for k in container.apikeys.list_for_user(session, user))

    _shred(container, user)
    assert client.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 401
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401, refreshed.text
    assert signer.get(WHOAMI).status_code == 401
    with container.db.read() as session:
        keys = container.apikeys.list_for_user(session, user)
        assert keys
        assert all(k.revoked_at is not None for k in keys)
        assert not container.identity.accounts.is_active(session, user)
        # The address is erased with the person: it no longer finds the account.
        assert container.identity.accounts.by_email(session, email) is None
    relogin = client.post("/v1/auth/login", json={"email": email, "password": ACCOUNT_PASSWORD})
    assert (relogin.status_code, problem(relogin)) == (401, "invalid-credentials")


def test_a_key_whose_secret_no_longer_opens_is_a_401(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    user = new_account(container)
    key = create_key(client, user, scopes=["read"])
    _destroy_keys_behind_the_services(container, user)
    response = bot(client, clock, key, secret=key["secret"]).get(WHOAMI)
    assert (response.status_code, problem(response)) == (401, "apikey-unusable")


def test_a_sign_in_whose_address_no_longer_opens_is_a_401(
    client: TestClient, container: Container
) -> None:
    user = new_account(container)
    email = email_of(container, user)
    _destroy_keys_behind_the_services(container, user)
    response = client.post("/v1/auth/login", json={"email": email, "password": ACCOUNT_PASSWORD})
    assert (response.status_code, problem(response)) == (401, "invalid-credentials")


def test_a_totp_code_whose_seed_no_longer_opens_is_a_wrong_code(container: Container) -> None:
    user = new_account(container)
    with container.uow() as uow:
        enrolment = container.mfa.begin_totp(uow, user, "label")
        uow.commit()
    with container.uow() as uow:
        assert container.mfa.confirm_totp(uow, user, totp_now(container, enrolment.secret)).ok
        uow.commit()
    _destroy_keys_behind_the_services(container, user)
    container.clock.advance(60)  # type: ignore[attr-defined]
    code = totp_now(container, enrolment.secret)
    with container.uow() as uow:
        check = container.mfa.verify(
            uow, user, "login:x", FactorResponse(FactorKind.TOTP, code=code)
        )
        uow.commit()
    assert not check.ok
    assert check.error is not None
    assert check.error.code == "mfa-invalid"

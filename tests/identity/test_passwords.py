"""Password hashing: argon2id at the configured cost, re-hash on change, bcrypt imports."""

from __future__ import annotations

import asyncio

import bcrypt
import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.identity.domain import HashingBusyError
from rampart.identity.passwords import HashingPool, PasswordHasher
from tests.identity.support import PASSWORD, login, verified_user

FAST = {"memory_kib": 19_456, "time_cost": 2, "parallelism": 1}


def test_argon2id_at_owasp_minimum() -> None:
    hasher = PasswordHasher(**FAST)
    stored = hasher.hash("pässwörd long enough")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert hasher.verify(stored, "pässwörd long enough")
    # NFKC: the decomposed spelling is the same password.
    assert hasher.verify(stored, "pa\u0308sswo\u0308rd long enough")
    assert not hasher.verify(stored, "passwörd long enough")
    assert not hasher.verify("garbage", "x")
    assert not hasher.needs_rehash(stored)
    assert PasswordHasher(memory_kib=32_768, time_cost=2, parallelism=1).needs_rehash(stored)


def test_bcrypt_hashes_verify_and_need_an_upgrade() -> None:
    hasher = PasswordHasher(**FAST)
    legacy = bcrypt.hashpw(b"imported secret", bcrypt.gensalt(rounds=4)).decode()
    assert hasher.verify(legacy, "imported secret")
    assert not hasher.verify(legacy, "imported secreT")
    assert hasher.needs_rehash(legacy)


def _stored(container: Container, email: str) -> str:
    with container.db.read() as session:
        user = container.identity.accounts.by_email(session, email)
        assert user is not None
        return str(user.password_hash)


def test_imported_bcrypt_user_is_upgraded_at_sign_in(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "legacy@example.com")
    with container.uow() as uow:
        user = container.identity.accounts.by_email(uow.session, "legacy@example.com")
        assert user is not None
        user.password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
        uow.commit()
    login(client, "legacy@example.com")
    assert _stored(container, "legacy@example.com").startswith("$argon2id$")
    login(client, "legacy@example.com")


def test_hash_is_upgraded_when_parameters_change(client: TestClient, container: Container) -> None:
    verified_user(client, container, "params@example.com")
    before = _stored(container, "params@example.com")
    container.identity.hashing.hasher = PasswordHasher(
        memory_kib=24_576, time_cost=2, parallelism=1
    )
    login(client, "params@example.com")
    after = _stored(container, "params@example.com")
    assert after != before
    assert "m=24576" in after
    login(client, "params@example.com")
    assert _stored(container, "params@example.com") == after


def test_pool_refuses_past_its_queue_bound() -> None:
    pool = HashingPool(PasswordHasher(**FAST), concurrency=1, queue_max=1)

    async def flood() -> list[object]:
        return await asyncio.gather(
            *(pool.hash(f"password number {i}") for i in range(6)), return_exceptions=True
        )

    try:
        results = asyncio.run(flood())
    finally:
        pool.stop()
    refused = [r for r in results if isinstance(r, HashingBusyError)]
    done = [r for r in results if isinstance(r, str)]
    assert refused
    assert done
    assert len(done) <= 2


def test_passwords_never_appear_in_reprs() -> None:
    from rampart.identity.api import LoginIn

    body = LoginIn(email="a@example.com", password="super secret value")
    assert "super secret value" not in repr(body)
    with pytest.raises(Exception):
        LoginIn.model_validate({"email": "a@example.com", "password": "x", "admin": True})

"""The attacks identity must hold against: forged and stale tokens, enumeration, guessing."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from tests.identity.support import (
    PASSWORD,
    audit_entries,
    bearer,
    link_token,
    login,
    verified_user,
)


def _claims(container: Container, tokens: dict, **overrides: object) -> dict:
    now = container.clock.time_ns() // 1_000_000_000
    cfg = container.settings.identity
    claims = {
        "iss": cfg.jwt_issuer,
        "aud": cfg.jwt_audience,
        "sub": jwt.decode(tokens["access_token"], options={"verify_signature": False})["sub"],
        "sid": tokens["session_id"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "x" * 36,
    }
    claims.update(overrides)
    return claims


def _signed(container: Container, claims: dict, **headers: object) -> str:
    kid, key = container.identity.keys.signing_key()
    # An access token's type, unless the test overrides it: each refusal below is then for the
    # one claim or header the test changes.
    return jwt.encode(
        claims, key, algorithm="EdDSA", headers={"kid": kid, "typ": "at+jwt", **headers}
    )


@pytest.fixture
def victim(client: TestClient, container: Container) -> dict:
    verified_user(client, container, "victim@example.com")
    tokens = login(client, "victim@example.com")
    assert client.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 200
    return tokens


def _refused(client: TestClient, token: str) -> None:
    response = client.get("/v1/me", headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json()["type"] in (
        "urn:rampart:problem:invalid-token",
        "urn:rampart:problem:token-revoked",
    )


def test_alg_none_is_refused(client: TestClient, container: Container, victim: dict) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = (
        base64.urlsafe_b64encode(json.dumps(_claims(container, victim)).encode())
        .rstrip(b"=")
        .decode()
    )
    _refused(client, f"{header}.{payload}.")


def test_hs256_signed_with_the_public_key_is_refused(
    client: TestClient, container: Container, victim: dict
) -> None:
    kid, key = container.identity.keys.signing_key()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk = client.get("/.well-known/jwks.json").json()["keys"][0]
    header = {"alg": "HS256", "kid": kid, "typ": "JWT"}
    for secret in (public_pem, jwk["x"].encode()):
        import hashlib
        import hmac

        def b64(raw: bytes) -> str:
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        signing_input = (
            b64(json.dumps(header).encode())
            + "."
            + b64(json.dumps(_claims(container, victim)).encode())
        )
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        _refused(client, f"{signing_input}.{b64(signature)}")


def test_unknown_kid_is_refused(client: TestClient, container: Container, victim: dict) -> None:
    _refused(client, _signed(container, _claims(container, victim), kid="no-such-key"))


def test_key_not_ours_is_refused(client: TestClient, container: Container, victim: dict) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    kid, _ = container.identity.keys.signing_key()
    forged = jwt.encode(
        _claims(container, victim),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    _refused(client, forged)


def test_expired_token_is_refused(
    client: TestClient, container: Container, clock: FrozenClock, victim: dict
) -> None:
    clock.advance(timedelta(minutes=15, seconds=1))
    _refused(client, victim["access_token"])


def test_wrong_audience_and_issuer_are_refused(
    client: TestClient, container: Container, victim: dict
) -> None:
    _refused(client, _signed(container, _claims(container, victim, aud="someone-else")))
    _refused(client, _signed(container, _claims(container, victim, iss="https://evil")))
    _refused(client, _signed(container, _claims(container, victim, aud=["rampart-api", "x"])))


def test_not_yet_valid_and_overlong_tokens_are_refused(
    client: TestClient, container: Container, victim: dict
) -> None:
    now = container.clock.time_ns() // 1_000_000_000
    _refused(client, _signed(container, _claims(container, victim, nbf=now + 3600)))
    _refused(client, _signed(container, _claims(container, victim, iat=now + 3600)))
    _refused(client, _signed(container, _claims(container, victim, exp=now + 86_400)))
    claims = _claims(container, victim)
    del claims["exp"]
    _refused(client, _signed(container, claims))


def test_tampered_payload_is_refused(
    client: TestClient, container: Container, victim: dict
) -> None:
    header, payload, signature = victim["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "01900000-0000-7000-8000-000000000000"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _refused(client, f"{header}.{forged}.{signature}")
    _refused(client, "not-a-jwt")
    _refused(client, victim["access_token"][:-4] + "AAAA")


def test_key_rotation_logs_nobody_out(
    client: TestClient, container: Container, clock: FrozenClock, victim: dict
) -> None:
    old_kid = jwt.get_unverified_header(victim["access_token"])["kid"]
    new_kid = container.identity.keys.rotate()
    assert new_kid != old_kid
    kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    assert kids == {old_kid, new_kid}
    assert client.get("/v1/me", headers=bearer(victim["access_token"])).status_code == 200
    fresh = client.post("/v1/auth/refresh", json={"refresh_token": victim["refresh_token"]}).json()
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid
    # Once the old key's last token has expired, it is no longer published.
    clock.advance(timedelta(minutes=16))
    container.identity.keys.load()
    kids = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    assert kids == {new_kid}


def test_jwks_publishes_ed25519_public_keys_only(client: TestClient, victim: dict) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert key["kty"] == "OKP"
    assert key["crv"] == "Ed25519"
    assert key["alg"] == "EdDSA"
    assert "d" not in key
    assert key["kid"] == jwt.get_unverified_header(victim["access_token"])["kid"]


# --- enumeration and guessing ---------------------------------------------------------------
def _strip(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "request_id"}


def test_unknown_email_and_wrong_password_look_the_same(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "known@example.com")
    wrong = client.post(
        "/v1/auth/login", json={"email": "known@example.com", "password": "nope-nope-nope"}
    )
    unknown = client.post(
        "/v1/auth/login", json={"email": "unknown@example.com", "password": "nope-nope-nope"}
    )
    malformed = client.post("/v1/auth/login", json={"email": "not an email", "password": "x"})
    assert wrong.status_code == unknown.status_code == malformed.status_code == 401
    assert _strip(wrong.json()) == _strip(unknown.json()) == _strip(malformed.json())
    assert set(wrong.headers) == set(unknown.headers)
    # Both are audited, by pseudonymous key, never by address.
    failures = audit_entries(container, "auth.login.failed")
    assert len(failures) == 3
    assert all("example.com" not in json.dumps(f) for f in failures)


def test_unknown_email_costs_a_real_hash_verification(
    client: TestClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Timing equality is measured in bench/identity.py; here: the same work is done.
    calls: list[str] = []
    hasher = container.identity.hashing.hasher
    original = hasher.verify

    def counting(stored: str, password: str) -> bool:
        calls.append(stored[:9])
        return original(stored, password)

    monkeypatch.setattr(hasher, "verify", counting)
    verified_user(client, container, "timing@example.com")
    client.post("/v1/auth/login", json={"email": "timing@example.com", "password": "wrong-wrong"})
    client.post("/v1/auth/login", json={"email": "ghost@example.com", "password": "wrong-wrong"})
    assert calls == ["$argon2id", "$argon2id"]


def test_failures_slow_down_then_lock_the_account_until_time_or_reset(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    cfg = container.settings.identity
    verified_user(client, container, "target@example.com")
    bad = {"email": "target@example.com", "password": "guess-guess-guess"}
    for _ in range(cfg.account_free_failures):
        assert client.post("/v1/auth/login", json=bad).status_code == 401
    # Past the free failures, an immediate retry must wait, even with the right password.
    throttled = client.post("/v1/auth/login", json={**bad, "password": PASSWORD})
    assert throttled.status_code == 429
    assert throttled.json()["type"] == "urn:rampart:problem:login-throttled"
    assert int(throttled.headers["Retry-After"]) >= 1
    # Waiting out each growing delay, keep failing until the lock.
    failures = cfg.account_free_failures
    while failures < cfg.account_lock_after:
        clock.advance(timedelta(seconds=cfg.throttle_max_seconds))
        assert client.post("/v1/auth/login", json=bad).status_code == 401
        failures += 1
    clock.advance(timedelta(seconds=cfg.throttle_max_seconds))
    locked = client.post("/v1/auth/login", json={**bad, "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["Retry-After"]) > cfg.throttle_max_seconds
    assert audit_entries(container, "auth.login.throttled")
    assert any(e["details"].get("locked") for e in audit_entries(container, "auth.login.failed"))

    # A password reset lifts the lock.
    client.post("/v1/auth/password/forgot", json={"email": "target@example.com"})
    token = link_token(container, "target@example.com", "password-reset")
    new = "the owner's new passphrase 5"
    assert (
        client.post("/v1/auth/password/reset", json={"token": token, "password": new}).status_code
        == 200
    )
    login(client, "target@example.com", new)


def test_the_lock_ends_by_itself(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    cfg = container.settings.identity
    verified_user(client, container, "patient@example.com")
    bad = {"email": "patient@example.com", "password": "guess-guess-guess"}
    for _ in range(cfg.account_lock_after):
        client.post("/v1/auth/login", json=bad)
        clock.advance(timedelta(seconds=cfg.throttle_max_seconds))
    assert client.post("/v1/auth/login", json={**bad, "password": PASSWORD}).status_code == 429
    clock.advance(timedelta(minutes=cfg.lock_minutes))
    login(client, "patient@example.com")


def test_unknown_addresses_are_throttled_like_real_ones(
    client: TestClient, container: Container
) -> None:
    cfg = container.settings.identity
    for email in ("real@example.com", "ghost@example.com"):
        if email == "real@example.com":
            verified_user(client, container, email)
        for _ in range(cfg.account_free_failures):
            client.post("/v1/auth/login", json={"email": email, "password": "wrong-wrong"})
    real = client.post("/v1/auth/login", json={"email": "real@example.com", "password": "x"})
    ghost = client.post("/v1/auth/login", json={"email": "ghost@example.com", "password": "x"})
    assert real.status_code == ghost.status_code == 429
    assert _strip(real.json()) == _strip(ghost.json())


def test_throttling_survives_a_restart(
    client: TestClient, container: Container, settings, clock: FrozenClock
) -> None:
    from rampart.bootstrap import bootstrap
    from rampart.web.app import create_app

    cfg = container.settings.identity
    verified_user(client, container, "restart@example.com")
    for _ in range(cfg.account_free_failures):
        client.post("/v1/auth/login", json={"email": "restart@example.com", "password": "wrong-1"})
    again = bootstrap(settings, clock=clock)
    try:
        with TestClient(create_app(again), base_url="https://testserver") as fresh:
            response = fresh.post(
                "/v1/auth/login", json={"email": "restart@example.com", "password": PASSWORD}
            )
            assert response.status_code == 429
    finally:
        again.close()


def test_operator_lock_ends_every_token_at_once(client: TestClient, container: Container) -> None:
    verified_user(client, container, "locked@example.com")
    tokens = login(client, "locked@example.com")
    me = client.get("/v1/me", headers=bearer(tokens["access_token"])).json()
    with container.uow() as uow:
        container.identity.accounts.set_locked(uow, me["id"], True, reason="fraud review")
        uow.commit()
    assert client.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 401
    response = client.post(
        "/v1/auth/login", json={"email": "locked@example.com", "password": PASSWORD}
    )
    assert response.status_code == 401


def test_signing_key_rotates_by_age_and_old_tokens_keep_working(
    client: TestClient, container: Container, clock: FrozenClock, victim: dict
) -> None:
    keys = container.identity.keys
    old_kid = jwt.get_unverified_header(victim["access_token"])["kid"]
    clock.advance(timedelta(days=container.settings.identity.jwt_key_rotation_days))
    assert keys.rotation_due()
    # Still signing with the old key until the rotator runs: nothing breaks in between.
    assert keys.signing_key()[0] == old_kid
    keys.load()  # what KeyRotator does when due
    assert keys.signing_key()[0] != old_kid
    assert not keys.rotation_due()


def test_a_reset_link_dies_when_the_address_changes(
    client: TestClient, container: Container
) -> None:
    """Someone who still reads the old mailbox (the reason people change address) must not take
    the account back with a reset link sent there before the change."""
    verified_user(client, container, "mover@example.com")
    client.post("/v1/auth/password/forgot", json={"email": "mover@example.com"})
    stale = link_token(container, "mover@example.com", "password-reset")
    tokens = login(client, "mover@example.com")
    changed = client.post(
        "/v1/me/email",
        json={"password": PASSWORD, "new_email": "moved@example.com"},
        headers=bearer(tokens["access_token"]),
    )
    assert changed.status_code == 202, changed.text
    confirm = link_token(container, "moved@example.com", "verify-email")
    assert client.post("/v1/auth/verify-email", json={"token": confirm}).status_code == 200

    taken = client.post(
        "/v1/auth/password/reset",
        json={"token": stale, "password": "an attacker's brand new passphrase"},
    )
    assert taken.status_code == 422
    assert taken.json()["type"] == "urn:rampart:problem:invalid-link"
    assert login(client, "moved@example.com")["access_token"]


def test_guessing_the_current_password_with_a_stolen_token_is_throttled(
    client: TestClient, container: Container
) -> None:
    """Closing the account (or changing the password) asks for the current one: with a stolen
    access token that must not become an unthrottled oracle for guessing it."""
    verified_user(client, container, "oracle@example.com")
    auth = bearer(login(client, "oracle@example.com")["access_token"])
    answers = [
        client.post("/v1/me/close", json={"password": f"wrong guess {n:04d}"}, headers=auth)
        for n in range(6)
    ]
    statuses = [r.status_code for r in answers]
    assert statuses[0] == 401, statuses
    assert statuses[-1] == 429, statuses
    # Even the right password waits now, and the account is still there.
    assert client.post("/v1/me/close", json={"password": PASSWORD}, headers=auth).status_code == 429
    assert client.get("/v1/me", headers=auth).status_code == 200


def test_a_token_of_another_type_signed_with_our_key_is_refused(
    client: TestClient, container: Container, victim: dict
) -> None:
    claims = _claims(container, victim)
    # The same claims as an access token are accepted: only the type differs below.
    assert client.get("/v1/me", headers=bearer(_signed(container, claims))).status_code == 200
    for typ in ("JWT", "id+jwt", None):
        _refused(client, _signed(container, claims, typ=typ))

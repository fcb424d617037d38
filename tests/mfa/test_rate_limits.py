"""The MFA rate limiters count wrong guesses, not a person's successes, and still stop brute force.

Sign-in and step-up checks share `user.mfa` and `ip.mfa`; enrolment checks (a first code, a new
key's attestation) have `user.mfa-enrol`. A unit is taken before each check, so concurrent guesses
cannot outrun the count, and given back when the check passes. The limiters fail closed.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from rampart.bootstrap import Container
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from rampart.ratelimit.backends import RedisBackend
from tests.identity.support import bearer, login
from tests.mfa.authenticator import SoftAuthenticator
from tests.mfa.test_api import code_for, enrol_totp, mfa_login, signed_up

ORIGIN = "http://127.0.0.1:8000"
EMAIL = "ann@example.com"
RATE_LIMITED = "urn:rampart:problem:rate-limited"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # These tests sign in with a password dozens of times from one address: the password step's
    # own flood limit (ip.login) is not what they are about.
    return Settings(
        profile="dev",
        data_dir=tmp_path / "var",
        database_url=database_url,
        ratelimit={"limits": {"ip.login": "1000/minute"}},
    )


def _register_key(client: TestClient, access: str) -> Any:
    begun = client.post("/v1/mfa/webauthn/registrations", headers=bearer(access), json={})
    assert begun.status_code == 200, begun.text
    credential = SoftAuthenticator().register(begun.json()["options"], origin=ORIGIN)
    return client.post(
        f"/v1/mfa/webauthn/registrations/{begun.json()['challenge_id']}",
        headers=bearer(access),
        json={"credential": credential, "name": "Laptop passkey"},
    )


def _wrong_code(client: TestClient) -> Any:
    return mfa_login(client, EMAIL, kind="totp", code="000000")


def test_a_passkey_registration_right_after_a_sign_in_with_mistyped_codes_is_accepted(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    secret, _ = enrol_totp(client, container, signed_up(client, container))
    clock.advance(30)  # the app's next code: enrolment spent this step's
    # Three typos, then the right code.
    for _ in range(3):
        assert _wrong_code(client).status_code == 401
    done = mfa_login(client, EMAIL, kind="totp", code=code_for(container, secret))
    assert done.status_code == 200, done.text
    # Straight on to adding a passkey (the sign-in's factor is fresh: no step-up asked).
    added = _register_key(client, done.json()["access_token"])
    assert added.status_code == 201, added.text


def test_successful_sign_ins_do_not_use_up_the_allowance(
    client: TestClient, container: Container
) -> None:
    _, backup = enrol_totp(client, container, signed_up(client, container))
    # Seven devices signed in within the minute, each with a good factor: none is refused.
    for code in backup[:7]:
        done = mfa_login(client, EMAIL, kind="backup_code", code=code)
        assert done.status_code == 200, done.text
    access = done.json()["access_token"]
    # ...and the step-up and the passkey after them are not refused either.
    stepped = client.post(
        "/v1/mfa/step-up",
        headers=bearer(access),
        json={"kind": "backup_code", "code": backup[7]},
    )
    assert stepped.status_code == 200, stepped.text
    assert _register_key(client, access).status_code == 201


def test_guesses_at_the_sign_in_do_not_stop_the_signed_in_owner_adding_a_key(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    secret, _ = enrol_totp(client, container, signed_up(client, container))
    clock.advance(30)
    owner = mfa_login(client, EMAIL, kind="totp", code=code_for(container, secret))
    assert owner.status_code == 200, owner.text
    # Meanwhile someone with the password guesses codes until the limiter stops them.
    statuses = [_wrong_code(client).status_code for _ in range(8)]
    assert statuses == [401] * 5 + [429] * 3
    # The owner, signed in with a fresh factor, still adds a passkey.
    assert _register_key(client, owner.json()["access_token"]).status_code == 201


def test_brute_force_on_the_second_factor_is_still_limited(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    secret, _ = enrol_totp(client, container, signed_up(client, container))
    clock.advance(30)  # the app's next code: enrolment spent this step's
    refused = None
    for attempt in range(8):
        answer = _wrong_code(client)
        if answer.status_code == 429:
            refused = attempt
            break
        assert answer.status_code == 401
    assert refused == 5, "five wrong guesses, then the limiter"
    # Once limited, even the right code is refused: the guesser cannot tell a hit from a miss.
    right = mfa_login(client, EMAIL, kind="totp", code=code_for(container, secret))
    assert right.status_code == 429
    assert right.json()["type"] == RATE_LIMITED
    assert int(right.headers["retry-after"]) >= 1


def test_guessing_across_accounts_from_one_ip_is_limited(
    client: TestClient, container: Container
) -> None:
    victims = [f"v{i}@example.com" for i in range(3)]
    for email in victims:
        enrol_totp(client, container, signed_up(client, container, email))
    statuses = [
        mfa_login(client, email, kind="totp", code="000000").status_code
        for _ in range(4)
        for email in victims
    ]
    # ip.mfa allows ten at once, whichever account they aim at; each account alone stays
    # under its own five.
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429] * 2


def test_step_up_and_enrolment_guesses_are_limited(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    access = signed_up(client, container)
    begun = client.post("/v1/mfa/totp", headers=bearer(access))
    secret = begun.json()["secret"]
    confirms = [
        client.post("/v1/mfa/totp/confirm", headers=bearer(access), json={"code": "000000"})
        for _ in range(6)
    ]
    assert [r.status_code for r in confirms] == [401] * 5 + [429]
    right = client.post(
        "/v1/mfa/totp/confirm",
        headers=bearer(access),
        json={"code": code_for(container, secret)},
    )
    assert right.status_code == 429
    clock.advance(300)
    right = client.post(
        "/v1/mfa/totp/confirm",
        headers=bearer(access),
        json={"code": code_for(container, secret)},
    )
    assert right.status_code == 200, right.text

    steps = [
        client.post(
            "/v1/mfa/step-up", headers=bearer(access), json={"kind": "totp", "code": "000000"}
        ).status_code
        for _ in range(6)
    ]
    assert steps == [401] * 5 + [429]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_with_the_limiter_backend_down_second_factors_are_refused(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    secret, _ = enrol_totp(client, container, signed_up(client, container))
    clock.advance(30)
    pending = login(client, EMAIL)["pending_login"]
    dead = redis.Redis(
        host="127.0.0.1",
        port=_closed_port(),
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    container.ratelimits.backend = RedisBackend(dead)
    answer = client.post(
        "/v1/auth/login/mfa",
        json={"pending_token": pending, "kind": "totp", "code": code_for(container, secret)},
    )
    assert answer.status_code == 503
    assert answer.json()["type"] == "urn:rampart:problem:rate-limiter-unavailable"

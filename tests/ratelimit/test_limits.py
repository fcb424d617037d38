"""GCRA limits: arithmetic, both backends (the Redis one against the real server), fail-closed
policy with Redis gone, adaptive tightening, and the HTTP answer (429 + headers)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from rampart.config import RateLimitSettings
from rampart.kernel.clock import FrozenClock
from rampart.platform.http.access import public
from rampart.platform.http.problems import install_problem_handlers
from rampart.platform.http.services import BoundServices, bind_services
from rampart.ratelimit.api import rate_limit, rate_limits_slot
from rampart.ratelimit.backends import MemoryBackend, RedisBackend
from rampart.ratelimit.domain import (
    LimitSpec,
    RateLimiterUnavailableError,
    RateLimitExceededError,
    gcra,
    gcra_refund,
    parse_spec,
)
from rampart.ratelimit.service import RateLimits


def test_parse_spec() -> None:
    spec = parse_spec("ip.login", "10/minute burst 5", fail_closed=True)
    assert (spec.count, spec.period, spec.burst, spec.scope) == (10, 60.0, 5, "ip")
    assert parse_spec("user.mfa", "10/5 minutes", fail_closed=True).period == 300
    with pytest.raises(ValueError):
        parse_spec("login", "10/minute", fail_closed=True)
    with pytest.raises(ValueError):
        parse_spec("ip.login", "lots", fail_closed=True)


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 50),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=80),
)
def test_gcra_never_allows_more_than_burst_plus_rate(
    count: int, burst: int, gaps: list[float]
) -> None:
    """In any window of length w, at most burst + w * rate requests pass."""
    spec = LimitSpec(name="ip.test", count=count, period=10.0, burst=burst)
    tat: float | None = None
    now = 1000.0
    allowed_at: list[float] = []
    for gap in gaps:
        now += gap
        decision, new_tat = gcra(tat, now, spec)
        if decision.allowed:
            allowed_at.append(now)
            tat = new_tat
            assert 0 <= decision.remaining < burst
        else:
            assert decision.retry_after > 0
    rate = count / 10.0
    for i, start in enumerate(allowed_at):
        for j in range(i, len(allowed_at)):
            window = allowed_at[j] - start
            assert j - i + 1 <= burst + window * rate + 1e-6


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 20),
    burst=st.integers(1, 20),
    attempts=st.lists(
        st.tuples(st.floats(0, 5, allow_nan=False), st.booleans()), min_size=1, max_size=80
    ),
)
def test_giving_back_the_units_of_successes_still_bounds_the_failures(
    count: int, burst: int, attempts: list[tuple[float, bool]]
) -> None:
    """Attempts take a unit and successes give it back: in any window of length w, at most
    burst + w * rate failed attempts get through, whatever the successes in between."""
    spec = LimitSpec(name="user.test", count=count, period=10.0, burst=burst)
    tat: float | None = None
    now = 1000.0
    failed_at: list[float] = []
    for gap, succeeds in attempts:
        now += gap
        decision, new_tat = gcra(tat, now, spec)
        if not decision.allowed:
            continue
        tat = new_tat
        if succeeds:
            tat = gcra_refund(tat, now, spec)
        else:
            failed_at.append(now)
    rate = count / 10.0
    for i, start in enumerate(failed_at):
        for j in range(i, len(failed_at)):
            assert j - i + 1 <= burst + (failed_at[j] - start) * rate + 1e-6


def _limits(backend: Any, clock: FrozenClock, **overrides: Any) -> RateLimits:
    return RateLimits(backend, clock, RateLimitSettings(**overrides))


@pytest.fixture(params=["memory", "redis"])
def limits(request: pytest.FixtureRequest, clock: FrozenClock) -> Iterator[RateLimits]:
    if request.param == "memory":
        yield _limits(MemoryBackend(clock), clock, limits={"ip.login": "3/minute"})
        return
    import redis

    url = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(url)
    # A fresh prefix per test: the shared Redis is used by other suites at the same time.
    backend = RedisBackend(client, prefix=f"test:{uuid.uuid4().hex}:")
    try:
        yield _limits(backend, clock, limits={"ip.login": "3/minute"})
    finally:
        client.close()


def test_a_subject_gets_its_burst_then_a_429_with_retry_after(
    limits: RateLimits, clock: FrozenClock
) -> None:
    remaining = [limits.hit("ip.login", "203.0.113.9").remaining for _ in range(3)]  # type: ignore[union-attr]
    assert remaining == [2, 1, 0]
    with pytest.raises(RateLimitExceededError) as refused:
        limits.hit("ip.login", "203.0.113.9")
    assert refused.value.headers["Retry-After"] == "20"
    assert refused.value.headers["RateLimit-Remaining"] == "0"
    # Another IP is not affected; time restores the allowance at the configured rate.
    assert limits.hit("ip.login", "203.0.113.10") is not None
    clock.advance(20)
    assert limits.hit("ip.login", "203.0.113.9") is not None
    with pytest.raises(RateLimitExceededError):
        limits.hit("ip.login", "203.0.113.9")


def test_a_refund_gives_back_one_unit_and_never_banks_more_than_the_burst(
    limits: RateLimits,
) -> None:
    subject = "203.0.113.20"
    limits.refund("ip.login", subject)  # nothing was taken: nothing to give back
    for _ in range(3):
        limits.hit("ip.login", subject)
    with pytest.raises(RateLimitExceededError):
        limits.hit("ip.login", subject)
    limits.refund("ip.login", subject)
    assert limits.hit("ip.login", subject) is not None
    with pytest.raises(RateLimitExceededError):
        limits.hit("ip.login", subject)
    for _ in range(10):
        limits.refund("ip.login", subject)
    for _ in range(3):
        limits.hit("ip.login", subject)
    with pytest.raises(RateLimitExceededError):
        limits.hit("ip.login", subject)


def test_an_attempt_keeps_its_unit_only_when_it_fails(limits: RateLimits) -> None:
    subject = "203.0.113.21"
    for _ in range(10):
        with limits.attempt([("ip.login", subject)]):
            pass  # succeeded: the unit goes back
    for _ in range(3):
        with pytest.raises(ValueError), limits.attempt([("ip.login", subject)]):
            raise ValueError("wrong code")
    ran = False
    with pytest.raises(RateLimitExceededError), limits.attempt([("ip.login", subject)]):
        ran = True
    assert not ran, "a refused attempt never runs"


def test_an_attempt_refused_by_one_limiter_gives_the_others_back(clock: FrozenClock) -> None:
    limits = _limits(
        MemoryBackend(clock), clock, limits={"ip.login": "3/minute", "user.login": "1/minute"}
    )
    limits.hit("user.login", "u1")
    for _ in range(5):
        with (
            pytest.raises(RateLimitExceededError),
            limits.attempt([("ip.login", "198.51.100.9"), ("user.login", "u1")]),
        ):
            pass
    # Nothing was tried, so the address's allowance is whole.
    assert [limits.hit("ip.login", "198.51.100.9").remaining for _ in range(3)] == [2, 1, 0]  # type: ignore[union-attr]


def test_adaptive_mode_tightens_after_auth_failures(limits: RateLimits) -> None:
    ip = "198.51.100.4"
    for _ in range(5):
        limits.record_auth_failure("ip", ip)
    assert limits.is_penalised("ip", ip)
    # ip.reads allows a burst of 100; a penalised IP gets a quarter of it.
    for _ in range(25):
        limits.hit("ip.reads", ip)
    with pytest.raises(RateLimitExceededError):
        limits.hit("ip.reads", ip)
    assert not limits.is_penalised("ip", "198.51.100.5")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_with_redis_down_guarded_limiters_fail_closed_and_others_open(
    clock: FrozenClock,
) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(
        host="127.0.0.1",
        port=_closed_port(),
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    limits = _limits(RedisBackend(dead), clock)
    for name in (
        "ip.login",
        "user.mfa",
        "ip.mfa",
        "user.mfa-enrol",
        "user.withdrawals",
        "key.orders",
        "user.orders",
    ):
        with pytest.raises(RateLimiterUnavailableError):
            limits.hit(name, "subject")
    assert limits.hit("ip.reads", "subject") is None
    assert limits.hit("ip.signup", "subject") is None


def test_routes_answer_429_with_ratelimit_headers(clock: FrozenClock) -> None:
    app = FastAPI()
    install_problem_handlers(app)

    services = BoundServices()
    services.bind(
        rate_limits_slot, _limits(MemoryBackend(clock), clock, limits={"ip.login": "2/minute"})
    )
    bind_services(app, services)
    router = APIRouter(dependencies=[Depends(public)])

    @router.post("/login", dependencies=[Depends(rate_limit("ip.login"))])
    def login() -> dict[str, str]:
        return {"ok": "yes"}

    app.include_router(router)
    with TestClient(app) as client:
        first = client.post("/login")
        assert first.status_code == 200
        assert first.headers["ratelimit-limit"] == "2"
        assert first.headers["ratelimit-remaining"] == "1"
        assert client.post("/login").status_code == 200
        refused = client.post("/login")
    assert refused.status_code == 429
    assert refused.json()["type"] == "urn:rampart:problem:rate-limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"
    assert "ratelimit-policy" in refused.headers


def test_user_and_key_limiters_need_the_access_dependency() -> None:
    with pytest.raises(ValueError):
        rate_limit("user.orders")

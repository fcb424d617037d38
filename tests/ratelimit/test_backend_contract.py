"""`RateLimitBackend`: the in-process backend and Redis keep a limiter's state the same way.

(`test_limits.py` runs the limiter service on both; this holds the port itself to its contract.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from rampart.kernel.clock import FrozenClock
from rampart.ratelimit.backends import MemoryBackend, RedisBackend
from rampart.ratelimit.domain import LimitSpec
from rampart.ratelimit.ports import RateLimitBackend

SPEC = LimitSpec("ip.contract", count=3, period=60.0, burst=3)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest, clock: FrozenClock) -> Iterator[RateLimitBackend]:
    if request.param == "memory":
        yield MemoryBackend(clock)
        return
    import redis

    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    try:
        # A fresh prefix per test: the shared Redis serves other suites at the same time.
        yield RedisBackend(client, prefix=f"test:{uuid.uuid4().hex}:")
    finally:
        client.close()


def test_a_key_gets_its_burst_then_is_refused_until_time_restores_it(
    backend: RateLimitBackend, clock: FrozenClock
) -> None:
    now = clock.monotonic()
    decisions = [backend.hit("k", SPEC, now) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    assert decisions[3].retry_after == pytest.approx(20.0)
    assert backend.hit("other", SPEC, now).allowed
    assert backend.hit("k", SPEC, now + 20.0).allowed
    assert not backend.hit("k", SPEC, now + 20.0).allowed


def test_a_refund_gives_back_what_a_hit_took_and_never_more_than_the_burst(
    backend: RateLimitBackend, clock: FrozenClock
) -> None:
    now = clock.monotonic()
    for _ in range(3):
        backend.hit("k", SPEC, now)
    backend.refund("k", SPEC, now)
    assert backend.hit("k", SPEC, now).allowed
    assert not backend.hit("k", SPEC, now).allowed
    for _ in range(10):
        backend.refund("k", SPEC, now)
    assert [backend.hit("k", SPEC, now).allowed for _ in range(4)] == [True, True, True, False]


def test_a_hit_may_cost_more_than_one_unit(backend: RateLimitBackend, clock: FrozenClock) -> None:
    now = clock.monotonic()
    assert backend.hit("k", SPEC, now, cost=3).allowed
    assert not backend.hit("k", SPEC, now).allowed


def test_counters_count_within_their_window_and_reset_clears_everything(
    backend: RateLimitBackend, clock: FrozenClock
) -> None:
    now = clock.monotonic()
    assert backend.count("c", now) == 0
    assert [backend.incr("c", 10.0, now) for _ in range(3)] == [1, 2, 3]
    assert backend.count("c", now + 5.0) == 3
    backend.reset("c")
    assert backend.count("c", now) == 0
    for _ in range(3):
        backend.hit("k", SPEC, now)
    backend.reset("k")
    assert backend.hit("k", SPEC, now).allowed

"""Where limiter state lives: in this process (embedded default) or in Redis (shared).

Both do the GCRA read-modify-write atomically: the in-process one under a lock, the Redis one as
a Lua script, so concurrent requests of one subject cannot both take the last allowance. Time comes
from the caller (the injected clock), not from Redis, so tests can move it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from rampart.platform.cache import TTLCache
from rampart.ratelimit.domain import Decision, LimitSpec, gcra, gcra_refund
from rampart.ratelimit.ports import BackendUnavailableError


class MemoryBackend:
    """`RateLimitBackend` in this process. Bounded (LRU), so a flood of distinct IPs cannot
    exhaust memory; the oldest idle entries go first, and an evicted subject simply starts
    again with a full allowance."""

    #: A few microseconds under a lock: cheaper inline on the event loop than a thread hop.
    blocking = False

    def __init__(self, clock: Any, max_entries: int = 200_000) -> None:
        self._tats: TTLCache[str, float] = TTLCache(max_entries, clock.monotonic)
        #: key -> (expires_at, count); the window starts at the first increment.
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def hit(self, key: str, spec: LimitSpec, now: float, cost: int = 1) -> Decision:
        with self._lock:
            decision, new_tat = gcra(self._tats.get(key), now, spec, cost)
            if new_tat is not None:
                self._tats.set(key, new_tat, ttl=max(new_tat - now, 0.001))
        return decision

    def refund(self, key: str, spec: LimitSpec, now: float, cost: int = 1) -> None:
        with self._lock:
            new_tat = gcra_refund(self._tats.get(key), now, spec, cost)
            if new_tat is None:
                self._tats.delete(key)
            else:
                self._tats.set(key, new_tat, ttl=new_tat - now)

    def incr(self, key: str, window: float, now: float) -> int:
        with self._lock:
            entry = self._counts.get(key)
            if entry is None or entry[0] <= now:
                entry = (now + window, 0)
            entry = (entry[0], entry[1] + 1)
            self._counts[key] = entry
            self._counts.move_to_end(key)
            while len(self._counts) > self._max:
                self._counts.popitem(last=False)
            return entry[1]

    def count(self, key: str, now: float) -> int:
        with self._lock:
            entry = self._counts.get(key)
            return entry[1] if entry is not None and entry[0] > now else 0

    def reset(self, key: str) -> None:
        self._tats.delete(key)
        with self._lock:
            self._counts.pop(key, None)


# Returns strings: Lua would truncate floats to integers on the way back.
_GCRA_LUA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst_offset = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local stored = redis.call('GET', KEYS[1])
local base = now
if stored then
  local tat = tonumber(stored)
  if tat > now then base = tat end
end
local new_tat = base + interval * cost
if now < new_tat - burst_offset then
  return {0, tostring(base)}
end
local ttl = math.ceil((new_tat - now) * 1000)
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', ttl)
return {1, tostring(base)}
"""

# The same arithmetic as `gcra_refund`.
_REFUND_LUA = """
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local now = tonumber(ARGV[1])
local new_tat = tonumber(stored) - tonumber(ARGV[2]) * tonumber(ARGV[3])
if new_tat <= now then
  redis.call('DEL', KEYS[1])
  return 1
end
local ttl = math.ceil((new_tat - now) * 1000)
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', ttl)
return 1
"""

_INCR_LUA = """
local value = redis.call('INCR', KEYS[1])
if value == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return value
"""


class RedisBackend:
    """Limiter state in Redis, shared by every process of the deployment."""

    blocking = True

    def __init__(self, redis: Any, prefix: str = "rampart:rl:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._gcra = redis.register_script(_GCRA_LUA)
        self._incr = redis.register_script(_INCR_LUA)
        self._refund = redis.register_script(_REFUND_LUA)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import redis

        try:
            return fn(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise BackendUnavailableError(type(exc).__name__) from exc

    def hit(self, key: str, spec: LimitSpec, now: float, cost: int = 1) -> Decision:
        allowed, base_text = self._call(
            self._gcra,
            keys=[self._prefix + key],
            args=[
                repr(now),
                repr(spec.emission_interval),
                repr(spec.emission_interval * spec.burst),
                cost,
            ],
        )
        base = float(base_text)
        # Re-derive the decision from the TAT Lua saw, with the same arithmetic as in-process.
        decision, _ = gcra(base if base > now else None, now, spec, cost)
        if bool(allowed) != decision.allowed:
            # Float rounding at the exact boundary: Redis's verdict (which it acted on) wins.
            decision = Decision(
                allowed=bool(allowed),
                limit=decision.limit,
                remaining=0 if not allowed else max(decision.remaining, 0),
                reset_after=decision.reset_after,
                retry_after=0.0 if allowed else max(decision.retry_after, 0.001),
                name=decision.name,
                period=decision.period,
            )
        return decision

    def refund(self, key: str, spec: LimitSpec, now: float, cost: int = 1) -> None:
        self._call(
            self._refund,
            keys=[self._prefix + key],
            args=[repr(now), repr(spec.emission_interval), cost],
        )

    def incr(self, key: str, window: float, now: float) -> int:
        return int(
            self._call(self._incr, keys=[self._prefix + key], args=[max(1, int(window * 1000))])
        )

    def count(self, key: str, now: float) -> int:
        value = self._call(self._redis.get, self._prefix + key)
        return int(value) if value is not None else 0

    def reset(self, key: str) -> None:
        self._call(self._redis.delete, self._prefix + key)

"""Nonce stores: each signature nonce is accepted once while its `created` is still fresh.

A nonce only needs remembering for as long as a signature carrying it could still pass the
freshness check (max age plus future skew); after that the stale `created` refuses a replay.
Redis `SET NX PX` makes the check-and-remember one atomic step across every process; the
in-process store (the embedded default, one process) does the same under a lock.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from rampart.kernel.clock import Clock
from rampart.kernel.errors import UnavailableError
from rampart.platform.cache import TTLCache
from rampart.platform.logging import get_logger

log = get_logger(__name__)


class NonceStoreUnavailableError(UnavailableError):
    code = "nonce-store-unavailable"
    title = "Signed requests cannot be checked for replay right now"


class NonceStore(Protocol):
    def first_use(self, key_id: str, nonce: str, ttl_seconds: float) -> bool:
        """True the first time (key, nonce) is seen within `ttl_seconds`; False afterwards."""
        ...


class MemoryNonceStore:
    def __init__(self, clock: Clock, max_entries: int = 1_000_000) -> None:
        self._max = max_entries
        self._lock = threading.Lock()
        self._seen: TTLCache[tuple[str, str], bool] = TTLCache(max_entries + 1, clock.monotonic)

    def first_use(self, key_id: str, nonce: str, ttl_seconds: float) -> bool:
        entry = (key_id, nonce)
        with self._lock:
            if self._seen.get(entry) is not None:
                return False
            if len(self._seen) >= self._max and (
                self._seen.purge_expired() == 0 and len(self._seen) >= self._max
            ):
                # Full of nonces still inside their window: making room would forget one that
                # could then be replayed. Fail closed, like the Redis store without Redis.
                log.error("nonce store full", entries=len(self._seen))
                raise NonceStoreUnavailableError
            return self._seen.add(entry, True, ttl=ttl_seconds)


class RedisNonceStore:
    def __init__(self, redis: Any, prefix: str = "rampart:nonce:") -> None:
        self._redis = redis
        self._prefix = prefix

    def first_use(self, key_id: str, nonce: str, ttl_seconds: float) -> bool:
        import redis

        try:
            created = self._redis.set(
                f"{self._prefix}{key_id}:{nonce}", b"1", nx=True, px=max(1, int(ttl_seconds * 1000))
            )
        except (redis.RedisError, OSError) as exc:
            # Fail closed: without the store a replay could not be told from a first use.
            log.error("nonce store unavailable", error=type(exc).__name__)
            raise NonceStoreUnavailableError from None
        return bool(created)

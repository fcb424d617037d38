"""Where a rate limiter keeps its state, as an interface.

`RateLimitBackend` does the GCRA read-modify-write and the windowed counters atomically.
Implemented in this process by `rampart.ratelimit.backends.MemoryBackend` (the embedded default
and the in-memory tier) and in Redis by `RedisBackend` (shared by every process);
`tests/ratelimit/test_backend_contract.py` holds both to the same behaviour.
"""

from __future__ import annotations

from typing import Protocol

from rampart.ratelimit.domain import Decision, LimitSpec


class BackendUnavailableError(Exception):
    """The backend cannot be reached; the limiter decides whether to fail open or closed."""


class RateLimitBackend(Protocol):
    #: True when `hit` may wait on the network: callers on an event loop then run it in a thread.
    blocking: bool

    def hit(self, key: str, spec: LimitSpec, now: float, cost: int = 1) -> Decision: ...

    def refund(self, key: str, spec: LimitSpec, now: float, cost: int = 1) -> None:
        """Give back `cost` units a `hit` took (`gcra_refund`), atomically."""
        ...

    def incr(self, key: str, window: float, now: float) -> int:
        """Add one to a counter that expires `window` seconds after its first increment."""
        ...

    def count(self, key: str, now: float) -> int: ...

    def reset(self, key: str) -> None: ...

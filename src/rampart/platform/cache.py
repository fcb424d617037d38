"""Caches: in-process by default, Redis when configured.

The in-process cache is a bounded LRU with per-entry expiry, safe across threads. It backs hot
read paths (verified tokens, permission sets) in the embedded default; a multi-process deployment
uses Redis for anything that must be shared (nonces, rate limits, revocations).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    def __init__(
        self, max_entries: int, clock: Callable[[], float], default_ttl: float = 60.0
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._clock = clock
        self._ttl = default_ttl
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires, value = item
            if expires <= self._clock():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return value

    def set(self, key: K, value: V, ttl: float | None = None) -> None:
        expires = self._clock() + (self._ttl if ttl is None else ttl)
        with self._lock:
            self._items[key] = (expires, value)
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def add(self, key: K, value: V, ttl: float | None = None) -> bool:
        """Set only if absent (or expired); True when this call set it. Like Redis SET NX."""
        now = self._clock()
        with self._lock:
            item = self._items.get(key)
            if item is not None and item[0] > now:
                return False
            self._items[key] = (now + (self._ttl if ttl is None else ttl), value)
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)
            return True

    def purge_expired(self) -> int:
        """Drop every expired entry now (a `get` drops only the one it looks at)."""
        now = self._clock()
        with self._lock:
            doomed = [k for k, (expires, _) in self._items.items() if expires <= now]
            for key in doomed:
                del self._items[key]
            return len(doomed)

    def delete(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)

    def delete_where(self, predicate: Callable[[K, V], bool]) -> int:
        with self._lock:
            doomed = [k for k, (_, v) in self._items.items() if predicate(k, v)]
            for key in doomed:
                del self._items[key]
            return len(doomed)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

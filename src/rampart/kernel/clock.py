"""Time, injected.

Code asks a `Clock` for the time instead of calling `time` or `datetime` directly, so tests can
freeze and move it (token expiry, throttling windows, halts) without sleeping.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def time_ns(self) -> int:
        """Nanoseconds since the Unix epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences mean anything."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def time_ns(self) -> int:
        return time.time_ns()

    def monotonic(self) -> float:
        return time.monotonic()


class FrozenClock:
    """A clock that moves only when told to. Thread-safe."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs a timezone-aware start")
        self._ns = int(start.timestamp()) * 1_000_000_000 + start.microsecond * 1000
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            ns = self._ns
        return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
            microsecond=(ns % 1_000_000_000) // 1000
        )

    def time_ns(self) -> int:
        with self._lock:
            return self._ns

    def monotonic(self) -> float:
        with self._lock:
            return self._ns / 1e9

    def advance(self, delta: timedelta | float) -> None:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        with self._lock:
            self._ns += int(seconds * 1_000_000_000)

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FrozenClock.set needs a timezone-aware time")
        with self._lock:
            self._ns = int(when.timestamp()) * 1_000_000_000 + when.microsecond * 1000


def utc(dt: datetime) -> datetime:
    """Return `dt` as aware UTC; a naive value is taken to be UTC already (as SQLite returns it)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)

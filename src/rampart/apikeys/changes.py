"""Telling every process that some API key or key owner changed (revoked, rotated, locked).

Each process keeps verified keys in memory (`KeyVerification`), so that a signed request needs no
database read. A process that revokes a key, rotates it, or locks or closes its owner forgets its
own cache right after the commit, then bumps a shared change marker; every other process looks at
the marker before it trusts its cache, and forgets everything when it moved.

- `FileKeyChanges` (the embedded default): eight random bytes in a file in the data directory,
  rewritten on each change and mapped into memory by every process: looking is a memory read, so
  the app and the CLI on one host see each other's revocations at once.
- `RedisKeyChanges` (with `redis_url`): a counter `INCR`ed on each change, read on each request
  in the worker thread that already talks to Redis for the nonce: every host sees it at once.

Without either (processes on several hosts sharing only PostgreSQL), the cache's lifetime
(`apikeys.auth_cache_seconds`) bounds how late another process notices.
"""

from __future__ import annotations

import mmap
import os
import secrets
import threading
from pathlib import Path
from typing import Any, Protocol

from rampart.platform.logging import get_logger

log = get_logger(__name__)

_TOKEN_BYTES = 8


class KeyChanges(Protocol):
    #: Whether `current()` may block (network I/O): then it is only called off the event loop.
    blocking: bool

    def current(self) -> object:
        """A token that differs from the last one whenever any process called `bump()`."""
        ...

    def bump(self) -> None:
        """Tell every process that some key or key owner changed (after the commit)."""
        ...


class LocalKeyChanges:
    """No cross-process marker: other processes notice within the cache's lifetime."""

    blocking = False

    def current(self) -> object:
        return None

    def bump(self) -> None:
        return None


class FileKeyChanges:
    """Eight bytes in a file shared by the processes on one host, rewritten on each change.

    Each process maps the file into memory once, so looking is a read from shared memory: no
    system call, and so no release of the GIL on the event loop (a `stat` per request measured
    as a visible cost under load, the loop waiting to get the GIL back from other threads).
    The file is rewritten in place, never replaced: a process keeps its mapping for its life.
    """

    blocking = False

    def __init__(self, path: Path) -> None:
        self._path = path
        self._map: mmap.mmap | None = None
        self._lock = threading.Lock()

    def _open(self) -> int:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(fd).st_size < _TOKEN_BYTES:
            os.ftruncate(fd, _TOKEN_BYTES)
        return fd

    def _mapped(self) -> mmap.mmap:
        if self._map is None:
            with self._lock:
                if self._map is None:
                    fd = self._open()
                    try:
                        self._map = mmap.mmap(fd, _TOKEN_BYTES, access=mmap.ACCESS_READ)
                    finally:
                        os.close(fd)
        return self._map

    def current(self) -> object:
        try:
            return self._mapped()[:_TOKEN_BYTES]
        except (OSError, ValueError) as exc:
            # No marker: a token never seen before, so nothing cached is trusted.
            log.error("api key change marker unreadable", error=type(exc).__name__)
            return object()

    def bump(self) -> None:
        # A random token rather than a counter: no read-modify-write to race with another
        # process bumping at the same moment (either write leaves a token nobody held).
        try:
            fd = self._open()
            try:
                os.pwrite(fd, secrets.token_bytes(_TOKEN_BYTES), 0)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("api key change marker not written", error=type(exc).__name__)

    def close(self) -> None:
        with self._lock:
            if self._map is not None:
                self._map.close()
                self._map = None


class RedisKeyChanges:
    """A Redis counter, shared by every process of a deployment."""

    blocking = True

    def __init__(self, redis: Any, key: str = "rampart:apikeys:changes") -> None:
        self._redis = redis
        self._key = key

    def current(self) -> object:
        import redis

        try:
            return self._redis.get(self._key)
        except (redis.RedisError, OSError) as exc:
            # Unknown state: trust no cached key (the database decides); the nonce store,
            # on the same Redis, refuses the request anyway.
            log.warning("api key change counter unavailable", error=type(exc).__name__)
            return object()

    def bump(self) -> None:
        import redis

        try:
            self._redis.incr(self._key)
        except (redis.RedisError, OSError) as exc:
            log.error("api key change counter not bumped", error=type(exc).__name__)

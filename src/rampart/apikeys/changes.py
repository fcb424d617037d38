"""Telling every process that some API key or key owner changed (revoked, rotated, locked).

Each process keeps verified keys in memory (`ApiKeyService`), so that a signed request needs no
database read. A process that revokes a key, rotates it, or locks or closes its owner forgets its
own cache right after the commit, then bumps a shared change marker; every other process looks at
the marker before it trusts its cache, and forgets everything when it moved.

- `FileKeyChanges` (the embedded default): a small file in the data directory, replaced on each
  change. Looking costs one `stat` (about a microsecond), so the app and the CLI on one host see
  each other's revocations at once.
- `RedisKeyChanges` (with `redis_url`): a counter `INCR`ed on each change, read on each request
  in the worker thread that already talks to Redis for the nonce: every host sees it at once.

Without either (processes on several hosts sharing only PostgreSQL), the cache's lifetime
(`apikeys.auth_cache_seconds`) bounds how late another process notices.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from rampart.kernel.ids import new_id
from rampart.platform.logging import get_logger

log = get_logger(__name__)


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
    """A marker file replaced atomically on each change; its identity is the token."""

    blocking = False

    def __init__(self, path: Path) -> None:
        self._path = path

    def current(self) -> object:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None
        except OSError:
            # Unreadable marker: a token never seen before, so nothing cached is trusted.
            return object()
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def bump(self) -> None:
        # A fresh file renamed over the old one: a new inode, so even two changes within the
        # file system's timestamp granularity give different tokens.
        tmp = self._path.with_name(f".{self._path.name}.{new_id()}")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(new_id())
            os.replace(tmp, self._path)
        except OSError as exc:
            log.error("api key change marker not written", error=type(exc).__name__)
            tmp.unlink(missing_ok=True)


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

"""Password hashing: argon2id for every new hash, bcrypt accepted for imported users.

Hashing is deliberately slow and memory-hard (tens of milliseconds, 19 MiB or more each), so it
never runs on the event loop: `HashingPool` runs it on a few dedicated threads (argon2-cffi and
bcrypt release the GIL), at most `concurrency` at a time, and refuses at once when too many
requests are already waiting. A login flood therefore queues behind the pool, bounded, while
every other request keeps its latency.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import bcrypt
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from rampart.identity.domain import HashingBusyError, normalise_password

T = TypeVar("T")

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# bcrypt only ever looked at the first 72 bytes; imported hashes were made that way.
_BCRYPT_MAX_BYTES = 72


class PasswordHasher:
    """argon2id with the configured cost; verifies argon2 and bcrypt hashes."""

    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int) -> None:
        self._argon2 = Argon2Hasher(
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._dummy: str | None = None
        self._dummy_lock = threading.Lock()

    def hash(self, password: str) -> str:
        return self._argon2.hash(normalise_password(password))

    def verify(self, stored: str, password: str) -> bool:
        """True when `password` matches `stored`; any malformed hash is simply a mismatch."""
        candidate = normalise_password(password)
        if stored.startswith(_BCRYPT_PREFIXES):
            try:
                return bcrypt.checkpw(
                    candidate.encode()[:_BCRYPT_MAX_BYTES], stored.encode("ascii")
                )
            except ValueError:
                return False
        try:
            return self._argon2.verify(stored, candidate)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """bcrypt always; argon2 when its parameters differ from the configured ones."""
        if stored.startswith(_BCRYPT_PREFIXES):
            return True
        try:
            return self._argon2.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return True

    def dummy_hash(self) -> str:
        """A hash of a random password at the current cost, verified in place of a real one when
        the account does not exist, so that the response takes the same time."""
        with self._dummy_lock:
            if self._dummy is None:
                self._dummy = self.hash(secrets.token_urlsafe(24))
            return self._dummy


#: How much nicer (Linux `nice` steps) hashing threads are than the rest of the process.
HASHING_NICENESS = 10


def _lower_priority() -> None:
    """Run this hashing thread below the event loop's priority: when both want a core, the
    requests already in flight win, and hashing takes what is left (Linux sets niceness per
    thread; elsewhere this does nothing)."""
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            os.setpriority(
                os.PRIO_PROCESS, threading.get_native_id(), min(19, current + HASHING_NICENESS)
            )
        except OSError:
            pass


class HashingPool:
    """Runs hashing off the event loop, `concurrency` at a time, refusing past `queue_max`."""

    def __init__(self, hasher: PasswordHasher, *, concurrency: int, queue_max: int) -> None:
        self.hasher = hasher
        self._concurrency = concurrency
        self._queue_max = queue_max
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self._concurrency,
                    thread_name_prefix="rampart-hash",
                    initializer=_lower_priority,
                )
            return self._executor

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        with self._lock:
            if self._pending >= self._concurrency + self._queue_max:
                raise HashingBusyError(retry_after=1.0)
            self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool(), fn, *args)
        finally:
            with self._lock:
                self._pending -= 1

    async def verify(self, stored: str, password: str) -> bool:
        return await self._run(self.hasher.verify, stored, password)

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    def warm(self) -> None:
        """Compute the dummy hash now, not during the first unknown-email login."""
        self.hasher.dummy_hash()

    def start(self) -> None:
        self.warm()

    def stop(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

"""`AuditLog`: appends for events that have no business transaction of their own.

Login failures and permission checks are recorded on their own, not inside a unit of work. Each
`append` waits until its entry is committed (durable: SQLite with `synchronous=FULL`, PostgreSQL
with its default synchronous commit) and returns its sequence number.

Group commit. Callers validate, canonicalise and hash their own entry (in their own thread, with
no lock held), then join the open *group*. One writer thread takes the oldest group and writes it
in one transaction while new callers fill the next one: the longer a commit takes, the more
callers pile into the next group, so batches grow with load by themselves (up to `batch_max`
entries). A group is settled as a whole: one `threading.Event` for the threads waiting on it and,
for async callers, one `call_soon_threadsafe` per event loop that resolves all of that loop's
futures at once, so waking a thousand callers costs a handful of cross-thread hand-offs, not a
thousand.

When the writer thread is not running (a CLI command, a test that never started the container)
`append` writes its entry in a transaction of its own, in the caller's thread: slower, equally
durable, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque

from rampart.audit.writer import PreparedEntry, SqlAuditWriter, prepare
from rampart.kernel.clock import Clock
from rampart.kernel.context import current_context
from rampart.kernel.errors import AuditUnavailableError
from rampart.kernel.events import AuditEvent
from rampart.platform.db import Database
from rampart.platform.logging import get_logger

log = get_logger(__name__)


class _Group:
    """Entries committed together, and how their callers learn the outcome."""

    __slots__ = ("done", "entries", "error", "first", "loops")

    def __init__(self) -> None:
        self.entries: list[PreparedEntry] = []
        self.done = threading.Event()
        self.first = -1
        self.error: BaseException | None = None
        #: The async callers waiting in this group, per event loop: (future, index).
        self.loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int]]] = {}


def _settle(
    waiters: list[tuple[asyncio.Future[int], int]], first: int, error: BaseException | None
) -> None:
    """Resolve one loop's waiters (runs in that loop, scheduled once per group)."""
    for future, index in waiters:
        if future.done():
            continue  # its caller was cancelled
        if error is not None:
            future.set_exception(_unavailable(error))
        else:
            future.set_result(first + index)


def _unavailable(error: BaseException) -> AuditUnavailableError:
    failure = AuditUnavailableError("The audit entry could not be written.")
    failure.__cause__ = error
    return failure


class AuditLog:
    def __init__(
        self, db: Database, writer: SqlAuditWriter, clock: Clock, *, batch_max: int = 512
    ) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock
        self._batch_max = batch_max
        # Callers take the plain lock (a C-level context manager, cheaper than the Condition's
        # own `with` on every append); the writer waits on the Condition built on it.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._groups: deque[_Group] = deque()
        self._stopping = False
        self._thread: threading.Thread | None = None
        #: Transactions written by the writer thread, and the entries in them (for metrics and
        #: the benchmark: their ratio is the mean batch).
        self.batches = 0
        self.batched_entries = 0

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="rampart-audit-writer", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._cond:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._stopping = True
            self._cond.notify()
        thread.join()

    @property
    def running(self) -> bool:
        return self._thread is not None

    # --- appending -----------------------------------------------------------------------
    def _prepare(self, event: AuditEvent) -> PreparedEntry:
        return prepare(event, current_context(), self._clock.time_ns())

    def append(self, event: AuditEvent) -> int:
        """Append one event and wait until it is durable; returns its sequence number."""
        entry = self._prepare(event)
        joined = self._join(entry, None)
        if joined is None:
            return self._write_now([entry])
        group, index, _ = joined
        group.done.wait()
        if group.error is not None:
            raise _unavailable(group.error)
        return group.first + index

    async def append_async(self, event: AuditEvent) -> int:
        """`append` for async code: the event loop keeps serving while the entry commits."""
        entry = self._prepare(event)
        joined = self._join(entry, asyncio.get_running_loop())
        if joined is None:
            return await asyncio.to_thread(self._write_now, [entry])
        future = joined[2]
        assert future is not None
        return await future

    def _join(
        self, entry: PreparedEntry, loop: asyncio.AbstractEventLoop | None
    ) -> tuple[_Group, int, asyncio.Future[int] | None] | None:
        with self._lock:
            if self._thread is None:
                return None
            groups = self._groups
            if not groups or len(groups[-1].entries) >= self._batch_max:
                groups.append(_Group())
                if len(groups) == 1:
                    self._cond.notify()
            group = groups[-1]
            index = len(group.entries)
            group.entries.append(entry)
            future = None
            if loop is not None:
                future = loop.create_future()
                waiters = group.loops.get(loop)
                if waiters is None:
                    group.loops[loop] = [(future, index)]
                else:
                    waiters.append((future, index))
            return group, index, future

    def _write_now(self, entries: list[PreparedEntry]) -> int:
        session = self._db.write_session()
        try:
            first = self._writer.write_prepared(session, entries)
            session.commit()
            return first
        finally:
            session.close()

    # --- the writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._groups and not self._stopping:
                    self._cond.wait()
                if not self._groups:
                    return
                # Taken out under the lock: from here on nobody joins this group.
                group = self._groups.popleft()
            self._commit(group)

    def _commit(self, group: _Group) -> None:
        try:
            group.first = self._write_now(group.entries)
        except Exception as exc:  # noqa: BLE001 - every waiter learns its entry was not written
            log.error(
                "audit batch not written", error=type(exc).__name__, entries=len(group.entries)
            )
            group.error = exc
        else:
            self.batches += 1
            self.batched_entries += len(group.entries)
        group.done.set()
        for loop, waiters in group.loops.items():
            # A closed loop (RuntimeError) has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, waiters, group.first, group.error)

"""`AuditLog`: appends for events that have no business transaction of their own.

Login failures and permission checks are recorded on their own, not inside a unit of work. Each
`append` waits until its entry is committed (durable: SQLite with `synchronous=FULL`, PostgreSQL
with its default synchronous commit) and returns its sequence number. Appends are group-committed:
a writer thread takes everything queued, up to `batch_max` entries, and writes it in one
transaction, so a thousand concurrent requests cost a handful of commits, not a thousand.

When the writer thread is not running (a CLI command, a test that never started the container)
`append` writes its entry in a transaction of its own, in the caller's thread: slower, equally
durable, never lost.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future

from rampart.audit.writer import PreparedEntry, SqlAuditWriter, prepare
from rampart.kernel.clock import Clock
from rampart.kernel.context import current_context
from rampart.kernel.events import AuditEvent
from rampart.platform.db import Database
from rampart.platform.logging import get_logger

log = get_logger(__name__)

_STOP = object()


class AuditLogClosedError(RuntimeError):
    pass


class AuditLog:
    def __init__(
        self, db: Database, writer: SqlAuditWriter, clock: Clock, *, batch_max: int = 512
    ) -> None:
        self._db = db
        self._writer = writer
        self._clock = clock
        self._batch_max = batch_max
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Entries committed by the writer thread per transaction, for the benchmark and metrics.
        self.batches = 0
        self.batched_entries = 0

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="rampart-audit-writer", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._queue.put(_STOP)
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
        future = self._submit(entry)
        if future is None:
            return self._write_now([entry])
        return future.result()

    async def append_async(self, event: AuditEvent) -> int:
        """`append` for async code: the event loop keeps serving while the entry commits."""
        entry = self._prepare(event)
        future = self._submit(entry)
        if future is None:
            return await asyncio.to_thread(self._write_now, [entry])
        return await asyncio.wrap_future(future)

    def _submit(self, entry: PreparedEntry) -> Future[int] | None:
        with self._lock:
            if self._thread is None:
                return None
            future: Future[int] = Future()
            self._queue.put((entry, future))
            return future

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
        stopping = False
        while not stopping:
            item = self._queue.get()
            batch: list[tuple[PreparedEntry, Future[int]]] = []
            if item is _STOP:
                stopping = True
            else:
                batch.append(item)  # type: ignore[arg-type]
            # Take whatever else is already waiting: that is the group in group commit.
            while len(batch) < self._batch_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    continue
                batch.append(item)  # type: ignore[arg-type]
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[tuple[PreparedEntry, Future[int]]]) -> None:
        try:
            first = self._write_now([entry for entry, _ in batch])
        except Exception as exc:  # noqa: BLE001 - every waiter learns its entry was not written
            log.error("audit batch not written", error=type(exc).__name__, entries=len(batch))
            for _, future in batch:
                future.set_exception(exc)
            return
        self.batches += 1
        self.batched_entries += len(batch)
        for offset, (_, future) in enumerate(batch):
            future.set_result(first + offset)

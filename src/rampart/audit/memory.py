"""The audit log in memory (`AuditAppender` and `AuditEntries`), for service tests.

Entries are validated and canonicalised exactly as the database log does it (`prepare`), so an
event the real log would refuse is refused here too; they are numbered from 1 in append order.
"""

from __future__ import annotations

import threading
from typing import Any

from rampart.audit.service import view_of
from rampart.audit.writer import PreparedEntry, prepare
from rampart.kernel.clock import Clock
from rampart.kernel.context import current_context
from rampart.kernel.errors import NotFoundError
from rampart.kernel.events import AuditEvent


class InMemoryAuditLog:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: list[PreparedEntry] = []

    def append(self, event: AuditEvent) -> int:
        entry = prepare(event, current_context(), self._clock.time_ns())
        with self._lock:
            self._entries.append(entry)
            return len(self._entries)

    async def append_async(self, event: AuditEvent) -> int:
        return self.append(event)

    def entry(self, seq: int) -> dict[str, Any]:
        with self._lock:
            if not 1 <= seq <= len(self._entries):
                raise NotFoundError("No audit entry has this sequence number.")
            entry = self._entries[seq - 1]
        return view_of(seq, entry.data, entry.leaf)

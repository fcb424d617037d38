"""A unit of work without a database, for the in-memory adapters of the domains' ports.

It keeps the one promise the in-memory adapters rely on: what a use case records (audit events,
work to do after the commit) happens at `commit()` or not at all. It has no `session`: an
in-memory adapter never reaches for one, and a database adapter handed this object fails at once
instead of writing somewhere unexpected.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from rampart.kernel.clock import Clock, FrozenClock
from rampart.kernel.events import AuditEvent


class Transaction(Protocol):
    """What an in-memory adapter needs of the caller's unit of work: `UnitOfWork` and
    `InMemoryUnitOfWork` both are one. Changes are staged with `after_commit`, so that a
    rolled-back use case leaves an in-memory adapter as untouched as a database."""

    def audit(self, event: AuditEvent) -> None: ...

    def after_commit(self, callback: Callable[[], None]) -> None: ...


class InMemoryUnitOfWork:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or FrozenClock()
        self.committed = False
        #: Audit events of the committed transactions, oldest first.
        self.audited: list[AuditEvent] = []
        self._audit: list[AuditEvent] = []
        self._after_commit: list[Callable[[], None]] = []

    def __enter__(self) -> InMemoryUnitOfWork:
        self.committed = False
        self._audit, self._after_commit = [], []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            self.rollback()

    def audit(self, event: AuditEvent) -> None:
        self._audit.append(event)

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    def commit(self) -> None:
        self.audited.extend(self._audit)
        callbacks, self._audit, self._after_commit = self._after_commit, [], []
        self.committed = True
        for callback in callbacks:
            callback()

    def rollback(self) -> None:
        self._audit, self._after_commit = [], []

"""The unit of work: one transaction per use case, committed here and nowhere else.

Services receive a `UnitOfWork`, use its session, record audit events and outbox messages on it,
and return. The caller (a route, a CLI command, a worker) commits. At commit the recorded audit
events and outbox messages are written in the same transaction as the change itself.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from sqlalchemy.orm import Session

from rampart.kernel.clock import Clock
from rampart.kernel.context import current_context
from rampart.kernel.events import AuditEvent, OutboxMessage
from rampart.kernel.ids import new_id
from rampart.platform.db import Database
from rampart.platform.outbox import OutboxRow


class AuditWriter(Protocol):
    """Writes audit events into the given session's transaction (implemented by `rampart.audit`)."""

    def write(self, session: Session, events: list[AuditEvent]) -> None: ...


class UnitOfWork:
    def __init__(self, db: Database, clock: Clock, audit_writer: AuditWriter | None) -> None:
        self._db = db
        self._clock = clock
        self._audit_writer = audit_writer
        self._session: Session | None = None
        self._audit: list[AuditEvent] = []
        self._after_commit: list[Callable[[], None]] = []
        self.committed = False

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("the unit of work is not open (use it in a `with` block)")
        return self._session

    @property
    def clock(self) -> Clock:
        return self._clock

    def __enter__(self) -> UnitOfWork:
        self._session = self._db.write_session()
        self._audit = []
        self._after_commit = []
        self.committed = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            if not self.committed:
                session.rollback()
        finally:
            session.close()

    def audit(self, event: AuditEvent) -> None:
        """Record an audit event; it is written with this transaction, or not at all."""
        if event.actor is None:
            from dataclasses import replace

            event = replace(event, actor=current_context().actor)
        self._audit.append(event)

    def emit(self, message: OutboxMessage) -> None:
        now = self._clock.now()
        self.session.add(
            OutboxRow(
                id=new_id(),
                topic=message.topic,
                payload=dict(message.payload),
                created_at=now,
                available_at=now,
                attempts=0,
            )
        )

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (e.g. wake a worker, publish)."""
        self._after_commit.append(callback)

    def commit(self) -> None:
        session = self.session
        if self._audit:
            if self._audit_writer is None:
                raise RuntimeError("audit events recorded but no audit writer is configured")
            self._audit_writer.write(session, self._audit)
        session.commit()
        self.committed = True
        self._audit = []
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def rollback(self) -> None:
        self.session.rollback()
        self._audit = []
        self._after_commit = []


UnitOfWorkFactory = Callable[[], UnitOfWork]

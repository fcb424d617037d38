"""What one batch of the order engine has changed so far: pure values the core fills and the
store writes (orders, fills, journal, outbox rows, audit entries), and what the runner hands
out after the commit (stream events, executions)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from rampart.kernel.context import RequestContext
from rampart.kernel.events import AuditEvent
from rampart.ledger.domain import LedgerBatch
from rampart.trading.domain import Fill, Order
from rampart.trading.ports import BatchLoader
from rampart.trading.stream import StreamEvent
from rampart.trading.undo import CommandUndo
from rampart.venue.domain import Instrument

#: Turns an audit event into the entry the batch writes (`rampart.audit.writer.prepare`), with
#: the context of the request that caused it and the batch's time.
PrepareAudit = Callable[[AuditEvent, RequestContext, int], Any]


@dataclass
class Batch:
    now: datetime
    #: Reads what the batch did not load beforehand, in the batch's transaction.
    load: BatchLoader
    ts_ns: int = 0
    ledger: LedgerBatch = field(default_factory=LedgerBatch)
    instruments: dict[str, Instrument | None] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    events: list[StreamEvent] = field(default_factory=list)
    symbols: set[str] = field(default_factory=set)
    client_ids: dict[tuple[str, str], Order] = field(default_factory=dict)
    #: With it, audit entries are prepared as they happen, in the order they happen, and
    #: written with one call (`write_prepared`); without it, order events go to `audit_events`.
    prepare_audit: PrepareAudit | None = None
    audit: list[Any] = field(default_factory=list)
    #: Order events for the unit of work's own audit writer (when there is no `prepare_audit`),
    #: handed to it at write time so that a failed command's can be dropped.
    audit_events: list[AuditEvent] = field(default_factory=list)
    #: The context of the command being handled (its audit entries carry its request id).
    context: RequestContext = field(default_factory=RequestContext)
    #: (user, symbol, side, quantity) of each fill, for the execution listeners after commit.
    executions: list[tuple[str, str, str, Decimal]] = field(default_factory=list)
    #: Each order's view as last recorded: the answer reuses it unless the order moved on.
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: What the command being run has changed so far; None between commands.
    undo: CommandUndo | None = None
    #: A command failed unexpectedly: the pre-trade checks may have counted it.
    failed: bool = False

    def view(self, order: Order) -> dict[str, Any]:
        view = self.views.get(order.id)
        if view is None or view["version"] != order.version:
            view = order.view()
        return view

    def audit_event(self, event: AuditEvent) -> None:
        if self.prepare_audit is None:
            self.audit_events.append(event)
        else:
            self.audit.append(self.prepare_audit(event, self.context, self.ts_ns))

    def lengths(self) -> tuple[int, ...]:
        """How long the batch's lists are: what a failed command's take-back cuts them to."""
        ledger = self.ledger
        return (
            len(self.fills),
            len(self.outbox),
            len(self.events),
            len(self.executions),
            len(ledger.entries),
            len(self.audit),
            len(self.audit_events),
            len(ledger.accounts),
            len(ledger.positions),
        )

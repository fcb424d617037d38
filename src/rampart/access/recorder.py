"""Every permission check, allowed or denied, goes to the audit log, durably, before the response.

Two ways a decision becomes durable:

1. *Carried*: a route that commits a transaction of its own through the order engine (order
   entry, modify, cancel) takes the request's allowed decision
   (`rampart.access.api.carried_decisions`) and writes it in that transaction, so a request costs
   one commit, not two. The transaction marks each decision `committed`; one that was not (the
   transaction failed, or never happened) is appended as in 2 before the response leaves.
2. *Awaited*: every other decision (denied ones, all other routes, WebSocket handshakes) is
   appended to the audit log's group commit and awaited before the handler runs.

Appending while the handler runs, and waiting only before the response, was measured and
rejected: a handler's request-scoped unit of work (`platform.http.deps.get_uow`) stays open until
after the response, and on SQLite an open write transaction holds the database's single write
lock, so the audit log's commit would wait for a lock that is released only after the response it
holds back (a deadlock until the 30 s busy timeout).

If the audit log cannot take an entry, the request fails (503): an action whose authorisation
cannot be recorded is not answered as done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from rampart.access.domain import Principal
from rampart.kernel.context import RequestContext, current_context
from rampart.kernel.errors import AuditUnavailableError
from rampart.kernel.events import AuditEvent
from rampart.platform.logging import get_logger

log = get_logger(__name__)


class AuditAppender(Protocol):
    async def append_async(self, event: AuditEvent) -> Any: ...


def access_event(principal: Principal, permission: str, allowed: bool, route: str) -> AuditEvent:
    """The audit entry of one permission check."""
    details: dict[str, Any] = {
        "permission": permission,
        "route": route[:300],
        "method": principal.method,
    }
    if principal.user_id is not None:
        details["user_id"] = principal.user_id
    if principal.credential_id is not None:
        details["credential_id"] = principal.credential_id
    return AuditEvent(
        action="access.allowed" if allowed else "access.denied",
        outcome="success" if allowed else "denied",
        subject=f"permission:{permission}",
        details=details,
        actor=principal.actor,
    )


@dataclass(eq=False, slots=True)
class CarriedDecision:
    """An allowed decision a route writes in its own transaction.

    The event with the request's context (request id, client IP, actor) and the time of the
    check: what the transaction needs to write the entry as the audit log would have. Whoever
    commits it sets `committed`, after the commit and before the request goes on; until then it
    is owed to the audit log.
    """

    event: AuditEvent
    context: RequestContext
    ts_ns: int
    committed: bool = False


class AuditLogAccessRecorder:
    """`AccessDecisionRecorder` writing through the audit log (`container.audit_log`).

    `audit_log` is a zero-argument callable returning the log, so that the recorder can be wired
    before the audit log exists in `bootstrap()` and still write to whichever log is in place.
    """

    def __init__(self, audit_log: Callable[[], AuditAppender | None]) -> None:
        self._audit_log = audit_log

    async def record(
        self, principal: Principal, permission: str, allowed: bool, route: str
    ) -> None:
        """Append the decision and wait until it is durable."""
        await self.append(access_event(principal, permission, allowed, route))

    def carry(
        self, principal: Principal, permission: str, route: str, ts_ns: int
    ) -> CarriedDecision:
        """An allowed decision, checked at `ts_ns`, for the route's own transaction to write."""
        event = access_event(principal, permission, True, route)
        return CarriedDecision(event, current_context(), ts_ns)

    async def append(self, event: AuditEvent) -> None:
        audit_log = self._audit_log()
        if audit_log is None:
            log.error("access decision not recorded: no audit log is configured")
            raise AuditUnavailableError
        try:
            await audit_log.append_async(event)
        except Exception as exc:  # noqa: BLE001 - any failure to record refuses the action
            log.error("access decision not recorded", error=type(exc).__name__)
            raise AuditUnavailableError from None

"""Every permission check, allowed or denied, goes to the audit log.

The recorder hands each decision to the audit log's asynchronous append, which group-commits
concurrent entries: an order costs one queued entry here, not one database transaction. If the
audit log cannot take the entry, the request fails (503): an action whose authorisation cannot be
recorded does not happen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from rampart.access.domain import Principal
from rampart.kernel.errors import UnavailableError
from rampart.kernel.events import AuditEvent
from rampart.platform.logging import get_logger

log = get_logger(__name__)


class AuditAppender(Protocol):
    async def append_async(self, event: AuditEvent) -> Any: ...


class AuditUnavailableError(UnavailableError):
    code = "audit-unavailable"
    title = "The action cannot be recorded right now"


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
        audit_log = self._audit_log()
        if audit_log is None:
            log.error("access decision not recorded: no audit log is configured")
            raise AuditUnavailableError
        try:
            await audit_log.append_async(access_event(principal, permission, allowed, route))
        except Exception as exc:  # noqa: BLE001 - any failure to record refuses the action
            log.error("access decision not recorded", error=type(exc).__name__)
            raise AuditUnavailableError from None

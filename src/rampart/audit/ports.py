"""What other domains need of the audit log, as interfaces.

`AuditAppender`: append an event that belongs to no transaction (a sign-in refused before any
change, a permission check) and wait until it is durable; events of a use case go through its
unit of work instead (`UnitOfWork.audit`). `AuditEntries`: read one entry back by its sequence
number, as the API and the operators' tools show it.

Implemented by `rampart.audit.log.AuditLog` + `rampart.audit.service.AuditReader` (SQL, with
the Merkle tree) and `rampart.audit.memory.InMemoryAuditLog`;
`tests/audit/test_audit_log_contract.py` holds both to the same behaviour.
"""

from __future__ import annotations

from typing import Any, Protocol

from rampart.kernel.events import AuditEvent


class AuditAppender(Protocol):
    def append(self, event: AuditEvent) -> int:
        """Append one event and wait until it is durable; returns its sequence number.
        `AuditEntryError` for an event that cannot be kept (an oversized field)."""
        ...

    async def append_async(self, event: AuditEvent) -> int:
        """`append` for async code."""
        ...


class AuditEntries(Protocol):
    def entry(self, seq: int) -> dict[str, Any]:
        """The entry (`seq`, `actor`, `action`, `outcome`, `subject`, `details`, `leaf_hash`,
        ...); `NotFoundError` for a sequence number never given out."""
        ...

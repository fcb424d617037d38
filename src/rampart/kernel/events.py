"""Facts that services record: audit events and outbox messages.

Services create these plain values; the unit of work writes them in the same transaction as the
change they describe, so a committed change always has its audit entry and its notifications, and
a rolled-back one has neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class AuditEvent:
    #: Dotted verb, e.g. `auth.login.failed`, `order.placed`, `access.denied`.
    action: str
    #: `success`, `failure` or `denied`.
    outcome: str = "success"
    #: What was acted on, by pseudonymous id: `order:<id>`, `user:<id>`.
    subject: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    #: Defaults to the actor of the current request context.
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    #: e.g. `notify.email`, `order.updated`.
    topic: str
    payload: Mapping[str, Any]

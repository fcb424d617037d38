"""What callers ask of the order engine (commands), what it answers, and how it refuses.

Pure values: the runner (`rampart.trading.engine`) queues them, the core
(`rampart.trading.core`) carries them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from rampart.kernel.context import RequestContext
from rampart.kernel.errors import ConflictError, NotFoundError, UnavailableError
from rampart.kernel.events import AuditEvent
from rampart.risk.domain import ORDER_PLACE
from rampart.trading.domain import OrderTicket, check_amounts

#: What a caller inside the process (the CLI, the market simulator, a test) holds when it sends
#: a command itself: it places orders for the platform, so it may place orders, and nothing
#: else. Stated here, where such callers build their commands, rather than assumed by the risk
#: gate for a command that carries no permissions: every HTTP route passes its principal's own.
IN_PROCESS_PERMISSIONS = frozenset({ORDER_PLACE})


class OrderNotOpenError(ConflictError):
    code = "order-not-open"
    title = "The order is no longer open"


class ClientOrderIdReusedError(ConflictError):
    code = "client-order-id-reused"
    title = "This client_order_id was used for a different order"


class ModifyRejectedError(ConflictError):
    code = "modify-rejected"
    title = "The modification was refused; the order is unchanged"

    def __init__(self, reason: str) -> None:
        super().__init__(f"The modification was refused: {reason}.", reason=reason)
        self.reason = reason


class EngineBusyError(UnavailableError):
    code = "engine-busy"
    title = "The order engine is at capacity; retry shortly"


class EngineStoppedError(UnavailableError):
    code = "engine-stopped"
    title = "The order engine is not running"


class OrderNotFoundError(NotFoundError):
    code = "order-not-found"
    title = "No such order"


class CarriedAudit(Protocol):
    """An audit event the request hands over (`rampart.access.recorder.CarriedDecision`)."""

    event: AuditEvent
    #: The request's context and the time of the event: the entry is written as if appended then.
    context: RequestContext
    ts_ns: int
    #: Set by the engine once the batch holding the entry has committed.
    committed: bool


@dataclass(frozen=True, slots=True)
class Place:
    user_id: str
    actor: str
    ticket: OrderTicket
    #: The request that sent it (request id, client IP), for its audit entries.
    context: RequestContext | None = None
    #: Audit entries the command's transaction must write (the request's access decisions).
    carried: tuple[CarriedAudit, ...] = ()
    #: The sender's permissions and credential, for the pre-trade checks: every HTTP route
    #: passes its principal's; an in-process caller states its own (`IN_PROCESS_PERMISSIONS`).
    permissions: frozenset[str] = IN_PROCESS_PERMISSIONS
    credential_id: str | None = None


@dataclass(frozen=True, slots=True)
class Modify:
    user_id: str
    actor: str
    order_id: str
    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    context: RequestContext | None = None
    carried: tuple[CarriedAudit, ...] = ()
    permissions: frozenset[str] = IN_PROCESS_PERMISSIONS
    credential_id: str | None = None

    def __post_init__(self) -> None:
        check_amounts(self.quantity, self.limit_price, self.stop_price)


@dataclass(frozen=True, slots=True)
class Cancel:
    user_id: str
    actor: str
    order_id: str
    context: RequestContext | None = None
    carried: tuple[CarriedAudit, ...] = ()


@dataclass(frozen=True, slots=True)
class CancelAll:
    user_id: str
    actor: str
    symbol: str | None = None
    context: RequestContext | None = None
    carried: tuple[CarriedAudit, ...] = ()


@dataclass(frozen=True, slots=True)
class ExpireDay:
    actor: str = "system"
    context: RequestContext | None = None
    carried: tuple[CarriedAudit, ...] = ()


@dataclass(frozen=True, slots=True)
class CancelOpen:
    """Cancel every open order matching all the filters given (none: every open order), with a
    stable `reason` code: trading halts and cancel-on-disconnect."""

    reason: str
    account_id: str | None = None
    symbol: str | None = None
    actor: str = "system"
    context: RequestContext | None = None
    carried: tuple[CarriedAudit, ...] = ()


Command = Place | Modify | Cancel | CancelAll | CancelOpen | ExpireDay


@dataclass(frozen=True, slots=True)
class PlaceResult:
    order: dict[str, Any]
    #: False when a retry with the same client_order_id found the existing order.
    created: bool

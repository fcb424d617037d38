"""The seam the pre-trade risk engine plugs into.

Every new order and every modification passes, in the order engine and before it reaches the
venue, through the built-in checks and then each `PreTradeCheck` registered on the container
(`container.pre_trade_checks`). A check returns `None` to accept, or a stable reason code (such
as `price-collar` or `trading-halted`) to reject: the order then becomes a recorded `rejected`
order carrying that code, never an exception. Checks run on the engine thread, inside the batch,
so they must be fast and must not do I/O per order; they read the snapshot they are given.

`rampart.risk` sits below `rampart.trading` in the layers: it implements this protocol
structurally and may import these names under `TYPE_CHECKING` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from rampart.trading.domain import Order
from rampart.venue.domain import BookSnapshot, Instrument


@dataclass(frozen=True, slots=True)
class PreTradeContext:
    """What a check may look at: a consistent snapshot taken inside the engine's batch."""

    #: `new` or `modify`.
    action: str
    instrument: Instrument
    #: Cash balance, reserved cash and buying power of the order's account, before this order.
    cash_balance: Decimal
    cash_reserved: Decimal
    buying_power: Decimal
    #: Signed position in the order's symbol (negative: short).
    position_quantity: Decimal
    #: Open orders the account has in this symbol (excluding this one).
    open_orders: int
    #: Last trade price, or the instrument's reference price before the first trade.
    last_price: Decimal
    #: Cash the order would hold if accepted (0 for plain sells).
    reservation: Decimal
    book: BookSnapshot | None = None
    #: Who sends the order: the audit actor (`user:<id>`, `apikey:<id>`), the principal's
    #: permissions and the credential used. `permissions` is None only for in-process callers
    #: without a principal (CLI, simulator); every HTTP route passes the principal's.
    actor: str | None = None
    permissions: frozenset[str] | None = None
    credential_id: str | None = None
    #: On a modify: what the replaced order still had open, and its limit (or stop) price, so a
    #: modification is checked for the difference it makes, not counted twice.
    replaced_quantity: Decimal | None = None
    replaced_price: Decimal | None = None


class PreTradeCheck(Protocol):
    """Optionally also `before_batch(accounts)` and `after_batch()`: the engine calls them around
    each batch's commands, with the accounts whose commands the batch runs. The start of a batch
    is the one moment a check may read the database and find it agreeing with the engine: inside
    the batch, the orders already accepted exist only in the engine's memory until it commits.
    And `invalidate()`: called when the engine rebuilt its books because another writer (another
    process) changed them, so that nothing counted on since is trusted as complete."""

    def check(self, order: Order, context: PreTradeContext) -> str | None:
        """None to accept; a stable reason code to reject."""
        ...

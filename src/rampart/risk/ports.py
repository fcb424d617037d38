"""What risk needs from the domains above and beside it, as interfaces.

`rampart.risk` sits below `rampart.trading` in the layers, so it cannot call the order engine.
The engine implements these protocols, and `bootstrap` hands the implementations to risk:

- `OpenOrderCanceller`: a halt cancels pending orders at once; cancel-on-disconnect cancels a
  dropped connection's orders.
- `AccountFactsSource`: positions, open orders, today's P&L and activity of an account, for the
  parts of the pre-trade snapshot the engine's per-order context does not carry.
- `TraderProfiles`: whether an account is active, its email verified and MFA enrolled (identity).

And the seam the other way, which the order engine calls and the risk gate implements:
`PreTradeCheck`, given the engine's order (`CheckedOrder`) and a typed `PreTradeContext`. Both
sides import these names from here, the layer below the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from rampart.risk.domain import AccountStatus, OpenOrderFact, PositionFact
from rampart.venue.domain import BookSnapshot, Instrument

if TYPE_CHECKING:
    # Annotations only: the engine's pure core imports this module.
    from sqlalchemy.orm import Session


class CheckedOrder(Protocol):
    """What a pre-trade check reads of the engine's order (`rampart.trading.domain.Order`)."""

    id: str
    user_id: str
    symbol: str
    quantity: Decimal
    filled_quantity: Decimal
    filled_notional: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None

    @property
    def is_open(self) -> bool: ...

    # Its side and type are string enums (`OrderSide`, `OrderType`): read as their values.
    @property
    def side(self) -> str: ...

    @property
    def type(self) -> str: ...


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
    #: Who sends the order (the audit actor: `user:<id>`, `apikey:<id>`), what the sender may
    #: do, and the credential used. Always the sender's own permissions: every HTTP route
    #: passes its principal's, and in-process callers state theirs (`rampart.trading.commands`).
    actor: str
    permissions: frozenset[str]
    credential_id: str | None = None
    book: BookSnapshot | None = None
    #: On a modify: what the replaced order still had open, and its limit (or stop) price, so a
    #: modification is checked for the difference it makes, not counted twice.
    replaced_quantity: Decimal | None = None
    replaced_price: Decimal | None = None


class PreTradeCheck(Protocol):
    """A check the order engine runs on every new and modified order, after its own checks and
    before the venue: `None` accepts, a stable reason code (such as `price-collar`) rejects;
    the order then becomes a recorded `rejected` order carrying that code, never an exception.
    Checks run on the engine thread, inside the batch: fast, and no I/O per order."""

    def check(self, order: CheckedOrder, context: PreTradeContext) -> str | None:
        """None to accept; a stable reason code to reject."""
        ...

    def before_batch(self, accounts: Iterable[str]) -> None:
        """Called before each batch's commands, with the accounts whose commands it runs: the
        one moment a check may read the database and find it agreeing with the engine (inside
        the batch, the orders already accepted exist only in the engine's memory)."""
        ...

    def after_batch(self) -> None:
        """Called after each batch's commands, whether they succeeded or not."""
        ...

    def invalidate(self) -> None:
        """The engine rebuilt its books (another writer changed them) or took back a command the
        check may have counted: nothing counted on since is to be trusted as complete."""
        ...


class OpenOrderCanceller(Protocol):
    """Cancels open orders through the order engine (implemented by trading).

    Called after the risk change that asks for it has committed, never inside its transaction:
    the engine writes in its own (group-committed) transaction, and on SQLite two writers in one
    thread would wait on each other.
    """

    def cancel_open_orders(
        self, *, account_id: str | None = None, symbol: str | None = None, reason: str
    ) -> int:
        """Cancel every open order matching all the filters given (none given: every open order
        on the platform), recording `reason` as the stable cancellation code. Returns how many.
        Blocks until the cancellations are committed."""
        ...


@dataclass(frozen=True, slots=True)
class TraderProfile:
    status: AccountStatus
    email_verified: bool
    mfa_enrolled: bool
    #: In the cooling period after an account recovery (factor reset, email-only password
    #: reset): no new orders until it ends.
    recovery_hold: bool = False


class TraderProfiles(Protocol):
    def trader_profile(self, session: Session, account_id: str) -> TraderProfile | None:
        """None when there is no such account (its orders are refused)."""
        ...


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """An account as the ledger and the order book know it, at one moment.

    A field left `None` is one the source does not know: the gate then keeps its own running
    figure since the start of the day (counted from the orders and executions it sees).
    """

    cash: Decimal
    reserved: Decimal
    positions: tuple[PositionFact, ...] = ()
    open_orders: tuple[OpenOrderFact, ...] = ()
    #: Cost basis per symbol, so unrealised P&L can be marked at reference prices.
    cost_basis: dict[str, Decimal] = field(default_factory=dict)
    #: Realised P&L since the account opened (the ledger's figure).
    realised_pnl_total: Decimal = Decimal(0)
    realised_pnl_today: Decimal | None = None
    orders_today: int | None = None
    trades_today: int | None = None
    #: One date per day trade over (at least) the last 5 business days; None: not read this
    #: time (the gate keeps what it knew, plus the day trades it saw since).
    day_trade_dates: tuple[date, ...] | None = None
    #: Quantity sold short today per symbol (open or filled): what today's locates already cover.
    short_sold_today: dict[str, Decimal] | None = None
    #: The sides each symbol traded on today (True: bought); None: not read this time.
    sides_today: dict[str, frozenset[bool]] | None = None


class AccountFactsSource(Protocol):
    def account_facts(self, session: Session, account_id: str, today: date) -> AccountFacts: ...

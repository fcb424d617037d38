"""What risk needs from the domains above and beside it, as interfaces.

`rampart.risk` sits below `rampart.trading` in the layers, so it cannot call the order engine.
The engine implements these protocols, and `bootstrap` hands the implementations to risk:

- `OpenOrderCanceller`: a halt cancels pending orders at once; cancel-on-disconnect cancels a
  dropped connection's orders.
- `AccountFactsSource`: positions, open orders, today's P&L and activity of an account, for the
  parts of the pre-trade snapshot the engine's per-order context does not carry.
- `TraderProfiles`: whether an account is active, its email verified and MFA enrolled (identity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Protocol

from sqlalchemy.orm import Session

from rampart.risk.domain import AccountStatus, OpenOrderFact, PositionFact


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

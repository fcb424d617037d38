"""What the pipeline reads: the order, and immutable snapshots of the account and the instrument
prepared beforehand, with aggregates computed once (see `rampart.risk.domain.holdings`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from rampart.risk.domain.vocabulary import ZERO, AccountStatus, InstrumentStatus, OrderType, Side


@dataclass(frozen=True, slots=True)
class ReplacedOrder:
    """For a modification: what the order being replaced still has open."""

    quantity: Decimal
    price: Decimal | None


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new order, or a modification (`replaces` set), as the risk pipeline sees it."""

    account_id: str
    symbol: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    #: The permissions of whoever asks (a session's user, or an API key within its scopes).
    permissions: frozenset[str] = frozenset()
    actor: str = "system"
    #: The session or API key used: what cancel-on-disconnect acts on.
    credential_id: str | None = None
    replaces: ReplacedOrder | None = None


@dataclass(frozen=True, slots=True)
class Holding:
    """One symbol of an account: the position and the account's own open orders in it."""

    quantity: Decimal = ZERO  # signed: negative is short
    open_buy_quantity: Decimal = ZERO
    open_sell_quantity: Decimal = ZERO  # long sales and short sales
    #: The highest own resting buy and the lowest own resting sell: what a new order could
    #: cross (self-trade). `None` when there is none.
    highest_open_buy: Decimal | None = None
    lowest_open_sell: Decimal | None = None
    #: An own resting market order on each side crosses anything.
    open_market_buy: bool = False
    open_market_sell: bool = False


NO_HOLDING = Holding()


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Everything the pipeline needs about an account, with aggregates computed beforehand."""

    account_id: str
    status: AccountStatus
    email_verified: bool
    mfa_enrolled: bool
    #: Settled cash; `reserved` is held for open buy orders (and short-sale margin).
    cash: Decimal
    reserved: Decimal
    #: Cash plus long market value minus short market value, at reference prices.
    equity: Decimal
    #: Positions at reference prices plus open orders at their prices, all symbols, all bots.
    gross_exposure: Decimal
    #: Intraday maintenance requirement of the current positions.
    margin_requirement: Decimal
    realised_pnl_today: Decimal
    unrealised_pnl: Decimal
    orders_today: int
    trades_today: int
    holdings: Mapping[str, Holding]
    #: One date per day trade (repeated for several on a day), at least the last 5 business days.
    day_trade_dates: tuple[date, ...] = ()
    #: Located (borrowed) quantity still available for short sales, per symbol.
    locates: Mapping[str, Decimal] = field(default_factory=dict)
    today: date = date(1970, 1, 1)
    #: In the cooling period after an account recovery: no new orders (`MFA_COOLING_PERIOD`).
    recovery_hold: bool = False

    @property
    def buying_power(self) -> Decimal:
        return self.cash - self.reserved

    def holding(self, symbol: str) -> Holding:
        return self.holdings.get(symbol, NO_HOLDING)


@dataclass(frozen=True, slots=True)
class InstrumentSnapshot:
    symbol: str
    status: InstrumentStatus
    reference_price: Decimal | None
    #: Price collar in percent of the reference price; `None` takes the platform default.
    collar_percent: Decimal | None = None
    threshold_security: bool = False
    easy_to_borrow: bool = True
    #: The price band (limit-up/limit-down style) in force: orders priced outside
    #: [band_low, band_high] are refused. `None`: no band (see `rampart.risk.bands`).
    band_low: Decimal | None = None
    band_high: Decimal | None = None
    #: The moving reference the band is centred on, and its window in seconds (for the reason).
    band_reference: Decimal | None = None
    band_window_seconds: int = 0

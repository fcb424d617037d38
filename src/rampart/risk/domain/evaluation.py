"""Facts about an order that several checks need, computed once per order, and the shape of a
check."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from rampart.risk.domain.activity import AccountActivity
from rampart.risk.domain.decision import Decision
from rampart.risk.domain.limits import RiskConfig, RiskLimits
from rampart.risk.domain.snapshots import (
    NO_HOLDING,
    AccountSnapshot,
    Holding,
    InstrumentSnapshot,
    OrderRequest,
)
from rampart.risk.domain.states import TradingControls
from rampart.risk.domain.vocabulary import HUNDRED, ONE, ZERO, Side

_BUY = Side.BUY
_SELL = Side.SELL


def reduces_exposure(order: OrderRequest, holding: Holding) -> bool:
    """True when the order can only bring the position closer to flat, even if every open
    order of the account on the same side fills first."""
    position = holding.quantity
    replaced = order.replaces.quantity if order.replaces is not None else ZERO
    if order.side is _SELL:
        return position > 0 and order.quantity + holding.open_sell_quantity - replaced <= position
    if order.side is _BUY:
        return position < 0 and order.quantity + holding.open_buy_quantity - replaced <= -position
    return False


def collar_fraction(instrument: InstrumentSnapshot, config: RiskConfig) -> Decimal:
    percent = instrument.collar_percent
    return (percent if percent is not None else config.default_collar_percent) / HUNDRED


def working_price(
    order: OrderRequest, instrument: InstrumentSnapshot, config: RiskConfig
) -> Decimal | None:
    """The price the order is valued at: its limit price, or for a market or stop order the
    worst price the collar lets it reach (`None` without a reference price)."""
    if order.limit_price is not None:
        return order.limit_price
    reference = instrument.reference_price
    if reference is None:
        return None
    if order.stop_price is not None and (
        (order.side is _BUY and order.stop_price > reference)
        or (order.side is not _BUY and order.stop_price < reference)
    ):
        reference = order.stop_price
    fraction = collar_fraction(instrument, config)
    if order.side is _BUY:
        return reference * (ONE + fraction)
    return reference * (ONE - fraction)


def estimated_fee(notional: Decimal, config: RiskConfig) -> Decimal:
    fee = notional * config.fee_rate
    return fee if fee > config.fee_minimum else config.fee_minimum


class Evaluation:
    """Per-order facts computed once and shared by the checks. Reused: no allocation per order
    beyond this object's fields (the pipeline is called from one thread at a time)."""

    __slots__ = ("activity", "holding", "notional", "now_ns", "price", "reducing", "replaced")

    def __init__(self) -> None:
        self.holding: Holding = NO_HOLDING
        self.reducing = False
        self.price: Decimal | None = None
        self.notional = ZERO
        self.replaced = ZERO  # notional of the order being replaced
        self.activity: AccountActivity = AccountActivity()
        self.now_ns = 0


Check = Callable[
    [OrderRequest, AccountSnapshot, InstrumentSnapshot, RiskLimits, TradingControls, Evaluation],
    Decision | None,
]

"""Orders: types, the lifecycle as an explicit transition table, reason codes, built-in checks.

Pure logic. The order engine's core (`rampart.trading.core`) is the only code that changes an order,
and it does so through `Order.transition`, which refuses any move the table does not allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from rampart.kernel.errors import ValidationError
from rampart.kernel.money import (
    AMOUNT_PLACES,
    MAX_ORDER_AMOUNT,
    ZERO,
    round_price,
    within_order_bounds,
)
from rampart.venue.domain import (
    Instrument,
    InstrumentStatus,
    OrderSide,
    OrderType,
    TimeInForce,
)

#: An order's quantity and prices: above 0, at most these, at most `AMOUNT_PLACES` decimal places
#: (`rampart.kernel.money`). Checked when a request or modification is built, before the engine.
MAX_QUANTITY = MAX_ORDER_AMOUNT
MAX_PRICE = MAX_ORDER_AMOUNT
MAX_CLIENT_ORDER_ID = 64
#: Beyond this many digits from the decimal point, `fmt` falls back to scientific notation, so
#: that formatting can never build a huge string (no order amount comes near it).
_POSITIONAL_DIGITS = 60


def fmt(value: Decimal | None) -> str | None:
    """The canonical text of an amount: positional, no trailing zeros, the same on every database.

    Total: it never raises, whatever the Decimal (the previous `quantize` raised for values of
    more than 28 digits, and failed a whole engine batch with them)."""
    if value is None:
        return None
    if not value.is_finite() or abs(value.adjusted()) > _POSITIONAL_DIGITS:
        return str(value)
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


class OrderStatus(StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"


S = OrderStatus

#: Every allowed move of an order. A move not listed is a bug and raises. `ACCEPTED -> ACCEPTED`
#: and `PARTIALLY_FILLED -> PARTIALLY_FILLED` are modifications (and further partial fills).
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.ACCEPTED, S.REJECTED}),
    S.ACCEPTED: frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}
OPEN_STATUSES = frozenset({S.ACCEPTED, S.PARTIALLY_FILLED})
FINAL_STATUSES = frozenset({S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED})


class Reason(StrEnum):
    """Stable reason codes for rejections and cancellations: clients branch on them."""

    INVALID_QUANTITY = "invalid-quantity"
    INVALID_PRICE = "invalid-price"
    OFF_TICK = "price-not-on-tick"
    OFF_LOT = "quantity-not-on-lot"
    UNKNOWN_INSTRUMENT = "unknown-instrument"
    INSTRUMENT_HALTED = "instrument-halted"
    INSTRUMENT_RESTRICTED = "instrument-restricted"
    INSUFFICIENT_BUYING_POWER = "insufficient-buying-power"
    INSUFFICIENT_POSITION = "insufficient-position"
    SHORT_SALE_NOT_ALLOWED = "short-sale-not-allowed"
    THRESHOLD_SECURITY = "threshold-security"
    NO_LIQUIDITY = "no-liquidity"
    # Cancellations.
    USER_CANCELLED = "user-cancelled"
    IOC_REMAINDER = "ioc-remainder"
    FOK_NOT_FILLABLE = "fok-not-fillable"
    SELF_TRADE_PREVENTED = "self-trade-prevented"
    END_OF_DAY = "end-of-day"


class IllegalTransitionError(RuntimeError):
    pass


class InvalidOrderError(ValidationError):
    code = "invalid-order"
    title = "The order is not valid"


class AmountOutOfRangeError(InvalidOrderError):
    code = "amount-out-of-range"
    title = "An amount is outside what an order may carry"


def check_amounts(
    quantity: Decimal | None, limit_price: Decimal | None, stop_price: Decimal | None
) -> None:
    """Refuse an amount an order may not carry (see `MAX_QUANTITY`): the one check every way
    into the engine passes (`OrderTicket`, `Modify`), so that nothing after it can meet a value
    that storage would round or refuse, or that formatting or arithmetic would raise on."""
    for name, value, maximum in (
        ("quantity", quantity, MAX_QUANTITY),
        ("limit_price", limit_price, MAX_PRICE),
        ("stop_price", stop_price, MAX_PRICE),
    ):
        if value is not None and not within_order_bounds(value, maximum):
            raise AmountOutOfRangeError(
                f"{name} must be a decimal above 0 and at most {fmt(maximum)}, "
                f"with at most {AMOUNT_PLACES} decimal places."
            )


class InstrumentLimitError(InvalidOrderError):
    code = "instrument-limit-exceeded"
    title = "An amount is outside the instrument's limits"


def grouped(value: Decimal) -> str:
    """An amount as people read it in a message: 2,000,000 or 1,234.5."""
    text = fmt(value) or ""
    whole, point, fraction = text.partition(".")
    return f"{int(whole):,}{point}{fraction}"


def check_instrument_limits(
    instrument: Instrument,
    quantity: Decimal | None,
    limit_price: Decimal | None,
    stop_price: Decimal | None,
) -> None:
    """Refuse an amount outside the instrument's own limits (`max_quantity`, `max_price`,
    `min_price`), naming the limit and the figure. A 422 at order entry, not a recorded
    rejection: like the platform's bounds, it is what the request may say, not a market state.
    Given only the figures an entry states (a modification's new ones), so that an order
    placed before a limit was tightened can still be reduced or cancelled."""
    symbol = instrument.symbol
    if (
        quantity is not None
        and instrument.max_quantity is not None
        and quantity > instrument.max_quantity
    ):
        raise InstrumentLimitError(
            f"quantity {grouped(quantity)} exceeds {symbol}'s maximum order quantity of "
            f"{grouped(instrument.max_quantity)}."
        )
    for name, price in (("limit_price", limit_price), ("stop_price", stop_price)):
        if price is None:
            continue
        if instrument.max_price is not None and price > instrument.max_price:
            raise InstrumentLimitError(
                f"{name} {grouped(price)} exceeds {symbol}'s maximum price of "
                f"{grouped(instrument.max_price)}."
            )
        if instrument.min_price is not None and price < instrument.min_price:
            raise InstrumentLimitError(
                f"{name} {grouped(price)} is below {symbol}'s minimum price of "
                f"{grouped(instrument.min_price)}."
            )


@dataclass(frozen=True, slots=True)
class OrderTicket:
    """What a customer asks to place, validated: the order as entered (`Place` carries it).

    Not the risk pipeline's `OrderRequest` (`rampart.risk.domain`), which is an order or a
    modification as the checks see it, with its account, sender and permissions."""

    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    client_order_id: str | None = None

    def __post_init__(self) -> None:
        check_amounts(self.quantity, self.limit_price, self.stop_price)
        needs_limit = self.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if needs_limit != (self.limit_price is not None):
            raise InvalidOrderError(
                "limit and stop-limit orders need a limit price; others must not have one"
            )
        if needs_stop != (self.stop_price is not None):
            raise InvalidOrderError("stop and stop-limit orders need a stop price; others not")
        if self.type is OrderType.MARKET and self.time_in_force is TimeInForce.GTC:
            raise InvalidOrderError("a market order cannot be good-till-cancelled")
        if self.client_order_id is not None and not (
            0 < len(self.client_order_id) <= MAX_CLIENT_ORDER_ID
            and self.client_order_id.isprintable()
        ):
            raise InvalidOrderError(f"client_order_id is 1-{MAX_CLIENT_ORDER_ID} printable chars")

    def same_as(self, order: Order) -> bool:
        """Whether a retry with this client_order_id asks for the order that already exists."""
        return (
            self.symbol == order.symbol
            and self.side is order.side
            and self.type is order.type
            and self.quantity == order.quantity
            and self.time_in_force is order.time_in_force
            and self.limit_price == order.limit_price
            and self.stop_price == order.stop_price
        )


@dataclass(slots=True)
class Order:
    id: str
    user_id: str
    symbol: str
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    client_order_id: str | None
    created_at: datetime
    updated_at: datetime
    status: OrderStatus = OrderStatus.NEW
    filled_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    #: Cash still held for this order (buys and short sales); zero once the order is final.
    reserved: Decimal = ZERO
    #: Time priority in the book; a new value when a modification loses priority.
    priority: int = 0
    #: For stop orders: whether the stop price has been reached.
    triggered: bool = False
    reason: str | None = None
    version: int = 0
    #: Set by the engine when the row must be inserted rather than updated.
    persisted: bool = field(default=False, compare=False)

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def average_price(self) -> Decimal | None:
        if self.filled_quantity == 0:
            return None
        return round_price(self.filled_notional / self.filled_quantity)

    @property
    def is_stop(self) -> bool:
        return self.type in (OrderType.STOP, OrderType.STOP_LIMIT)

    @property
    def working_price(self) -> Decimal | None:
        """The price the order works at in the book (None: at market)."""
        return self.limit_price if self.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None

    @property
    def reserves_cash(self) -> bool:
        return self.side is not OrderSide.SELL

    def transition(self, to: OrderStatus, now: datetime, reason: str | None = None) -> OrderStatus:
        before = self.status
        if to not in TRANSITIONS[before]:
            raise IllegalTransitionError(f"order {self.id}: {before} -> {to} is not allowed")
        self.status = to
        self.updated_at = now
        self.version += 1
        if reason is not None:
            self.reason = reason
        return before

    def view(self) -> dict[str, Any]:
        """The order as users and streams see it (amounts as strings)."""
        return {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "symbol": self.symbol,
            "side": self.side.value,
            "type": self.type.value,
            "time_in_force": self.time_in_force.value,
            "quantity": fmt(self.quantity),
            "limit_price": fmt(self.limit_price),
            "stop_price": fmt(self.stop_price),
            "status": self.status.value,
            "filled_quantity": fmt(self.filled_quantity),
            "average_price": fmt(self.average_price),
            "reason": self.reason,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Fill:
    id: str
    trade_id: str
    order_id: str
    user_id: str
    symbol: str
    side: OrderSide
    price: Decimal
    quantity: Decimal
    liquidity: str
    created_at: datetime
    #: The P&L this fill realised on the account's position (its closing part; zero when it only
    #: opens or adds), so today's realised P&L can be summed from the fills after a restart.
    realised_pnl: Decimal = ZERO

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trade_id": self.trade_id,
            "order_id": self.order_id,
            "symbol": self.symbol,
            "side": self.side.value,
            "price": fmt(self.price),
            "quantity": fmt(self.quantity),
            "liquidity": self.liquidity,
            "created_at": self.created_at.isoformat(),
        }


def check_shape(order: Order, instrument: Instrument) -> Reason | None:
    """Checks that need only the order and its instrument: quantity, tick, lot, status."""
    if order.quantity <= 0 or order.quantity > MAX_QUANTITY:
        return Reason.INVALID_QUANTITY
    if not instrument.on_lot(order.quantity):
        return Reason.OFF_LOT
    for price in (order.limit_price, order.stop_price):
        if price is None:
            continue
        if price <= 0 or price > MAX_PRICE:
            return Reason.INVALID_PRICE
        if not instrument.on_tick(price):
            return Reason.OFF_TICK
    if instrument.status is InstrumentStatus.HALTED:
        return Reason.INSTRUMENT_HALTED
    if order.side is OrderSide.SELL_SHORT:
        if instrument.threshold_security:
            return Reason.THRESHOLD_SECURITY
        if not instrument.easy_to_borrow:
            return Reason.SHORT_SALE_NOT_ALLOWED
    return None


def check_restricted(
    order: Order, instrument: Instrument, position_quantity: Decimal, open_quantity: Decimal
) -> Reason | None:
    """A restricted instrument takes only orders that reduce an existing position, so that
    customers are never trapped in it; opening or increasing a position is refused (the risk
    gate applies the same policy to its restricted list, counting open orders too).

    `open_quantity` is what the order would have open (its remaining quantity on a modify)."""
    if instrument.status is not InstrumentStatus.RESTRICTED:
        return None
    reduces = (order.side is OrderSide.SELL and position_quantity > 0) or (
        order.side is OrderSide.BUY and position_quantity < 0
    )
    if not reduces or open_quantity > abs(position_quantity):
        return Reason.INSTRUMENT_RESTRICTED
    return None

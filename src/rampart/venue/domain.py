"""The market as a venue sees it: instruments, order values, and a price-time-priority book.

Pure logic: no database, no clock, no I/O. `OrderBook` matches one symbol; `MatchingVenue` is the
built-in venue (one book per symbol) behind the `Venue` interface that broker or exchange adapters
will implement later. The venue knows orders by id and owner only: cash, positions and buying power
belong to the ledger and the order engine above it.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from rampart.kernel.money import within_order_bounds


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class OrderSide(StrEnum):
    """The side of an order, as a customer gives it; a short sale rests on the sell side."""

    BUY = "buy"
    SELL = "sell"
    SELL_SHORT = "sell_short"

    @property
    def book_side(self) -> Side:
        return Side.BUY if self is OrderSide.BUY else Side.SELL


class InstrumentStatus(StrEnum):
    ACTIVE = "active"
    #: No new orders and no matching; resting orders stay until cancelled or the halt lifts.
    HALTED = "halted"
    #: Closing-only: orders that reduce a position are accepted, others are refused.
    RESTRICTED = "restricted"


#: Price and quantity precision together may use at most this many decimal places, so that
#: price x quantity (every cash movement) is exact in the ledger's NUMERIC(38, 8) columns.
MAX_COMBINED_PLACES = 8


def decimal_places(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    name: str
    tick_size: Decimal
    lot_size: Decimal
    status: InstrumentStatus
    reference_price: Decimal
    #: Shares can be located for short sales (Reg SHO locate requirement).
    easy_to_borrow: bool = True
    #: On the Reg SHO threshold list: short sales need a pre-borrow, refused here.
    threshold_security: bool = False
    #: The instrument's own bounds at order entry (None: only the platform's, 10,000,000): a
    #: fat-finger guard sized to what is sane for this instrument. Within the platform's bounds
    #: (`kernel.money.within_order_bounds`), so that NUMERIC(38, 8) stays exact.
    max_quantity: Decimal | None = None
    max_price: Decimal | None = None
    min_price: Decimal | None = None

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError("tick and lot sizes must be positive")
        if decimal_places(self.tick_size) + decimal_places(self.lot_size) > MAX_COMBINED_PLACES:
            raise ValueError("tick size and lot size together may have at most 8 decimal places")
        if self.reference_price <= 0:
            raise ValueError("the reference price must be positive")
        self._check_limits()

    def _check_limits(self) -> None:
        for name, value in (
            ("maximum quantity", self.max_quantity),
            ("maximum price", self.max_price),
            ("minimum price", self.min_price),
        ):
            if value is not None and not within_order_bounds(value):
                raise ValueError(
                    f"the {name} must be above 0 and at most 10,000,000, "
                    "with at most 8 decimal places"
                )
        if self.max_quantity is not None and self.max_quantity < self.lot_size:
            raise ValueError("the maximum quantity must be at least the lot size")
        if self.max_price is not None and self.max_price < self.tick_size:
            raise ValueError("the maximum price must be at least the tick size")
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise ValueError("the minimum price must not exceed the maximum price")
        # The reference price seeds the book and the price bands: it must be a price one may
        # trade at, or the instrument would open outside its own limits.
        if self.max_price is not None and self.reference_price > self.max_price:
            raise ValueError("the reference price must not exceed the maximum price")
        if self.min_price is not None and self.reference_price < self.min_price:
            raise ValueError("the reference price must not be below the minimum price")

    def on_tick(self, price: Decimal) -> bool:
        return _multiple_of(price, self.tick_size)

    def on_lot(self, quantity: Decimal) -> bool:
        return _multiple_of(quantity, self.lot_size)


def _multiple_of(value: Decimal, step: Decimal) -> bool:
    """Whether `value` is a positive whole multiple of `step`. Never raises: a remainder whose
    quotient is beyond the decimal context (only for values far outside an order's bounds) or a
    value that is not a number counts as not on the step."""
    try:
        return value > 0 and (value % step) == 0
    except ArithmeticError:
        return False


@dataclass(slots=True)
class RestingOrder:
    """An order in the book: what matching needs and nothing more."""

    order_id: str
    owner: str
    side: Side
    price: Decimal
    remaining: Decimal
    #: Lower is earlier: time priority within a price level.
    priority: int


@dataclass(frozen=True, slots=True)
class Match:
    maker_id: str
    maker_owner: str
    price: Decimal
    quantity: Decimal
    maker_remaining: Decimal


@dataclass(frozen=True, slots=True)
class Taker:
    """An incoming order to match: `limit` None is a market order."""

    order_id: str
    owner: str
    side: Side
    quantity: Decimal
    limit: Decimal | None


@dataclass(slots=True)
class MatchResult:
    matches: list[Match] = field(default_factory=list)
    #: Resting orders of the taker's own owner met while matching: cancelled instead of trading
    #: (self-trade prevention, "cancel resting"), so nobody trades with themselves.
    self_trade_cancelled: list[RestingOrder] = field(default_factory=list)

    @property
    def filled(self) -> Decimal:
        return sum((m.quantity for m in self.matches), Decimal(0))


@dataclass(frozen=True, slots=True)
class Level:
    price: Decimal
    quantity: Decimal
    orders: int


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    symbol: str
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    last_price: Decimal | None = None

    @property
    def best_bid(self) -> Decimal | None:
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        return self.asks[0].price if self.asks else None


class _SideBook:
    """One side of a book: price levels in priority order, FIFO within a level."""

    __slots__ = ("_keys", "_levels", "_totals", "side")

    def __init__(self, side: Side) -> None:
        self.side = side
        # Sort keys ascending: asks by price, bids by negated price, so index 0 is always best.
        self._keys: list[Decimal] = []
        self._levels: dict[Decimal, OrderedDict[str, RestingOrder]] = {}
        #: Quantity resting at each level, kept as orders come, fill and go: the depth the
        #: engine publishes after every batch without summing every order of ten levels.
        self._totals: dict[Decimal, Decimal] = {}

    def _key(self, price: Decimal) -> Decimal:
        return -price if self.side is Side.BUY else price

    def add(self, order: RestingOrder) -> None:
        level = self._levels.get(order.price)
        if level is None:
            level = OrderedDict()
            self._levels[order.price] = level
            self._totals[order.price] = Decimal(0)
            insort(self._keys, self._key(order.price))
        self._totals[order.price] += order.remaining
        if level and next(reversed(level.values())).priority > order.priority:
            # Out of time order (only when restoring): keep the level sorted by priority.
            ordered = sorted([*level.values(), order], key=lambda o: o.priority)
            level.clear()
            level.update((o.order_id, o) for o in ordered)
            return
        level[order.order_id] = order

    def remove(self, order: RestingOrder) -> None:
        level = self._levels.get(order.price)
        if level is None or level.pop(order.order_id, None) is None:
            return
        self._totals[order.price] -= order.remaining
        if not level:
            del self._levels[order.price]
            del self._totals[order.price]
            key = self._key(order.price)
            index = bisect_left(self._keys, key)
            if index < len(self._keys) and self._keys[index] == key:
                del self._keys[index]

    def adjust(self, price: Decimal, delta: Decimal) -> None:
        """Record that an order resting at `price` changed its remaining quantity by `delta`."""
        self._totals[price] += delta

    def best_price(self) -> Decimal | None:
        if not self._keys:
            return None
        return -self._keys[0] if self.side is Side.BUY else self._keys[0]

    def levels(self) -> Iterator[tuple[Decimal, OrderedDict[str, RestingOrder]]]:
        for key in list(self._keys):
            price = -key if self.side is Side.BUY else key
            level = self._levels.get(price)
            if level:
                yield price, level

    def depth(self, count: int) -> tuple[Level, ...]:
        out = []
        for price, level in self.levels():
            out.append(Level(price, self._totals[price], len(level)))
            if len(out) >= count:
                break
        return tuple(out)

    def __len__(self) -> int:
        return sum(len(level) for level in self._levels.values())


def _crosses(taker: Taker, price: Decimal) -> bool:
    if taker.limit is None:
        return True
    return price <= taker.limit if taker.side is Side.BUY else price >= taker.limit


class OrderBook:
    """A price-time-priority limit order book for one symbol.

    Trades happen at the resting (maker) order's price. Within a price level the earlier order
    (lower `priority`) fills first.
    """

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._sides = {Side.BUY: _SideBook(Side.BUY), Side.SELL: _SideBook(Side.SELL)}
        self._orders: dict[str, RestingOrder] = {}
        self.last_price: Decimal | None = None

    # --- queries ----------------------------------------------------------------------------
    def __contains__(self, order_id: str) -> bool:
        return order_id in self._orders

    def __len__(self) -> int:
        return len(self._orders)

    def get(self, order_id: str) -> RestingOrder | None:
        return self._orders.get(order_id)

    def orders(self) -> Iterable[RestingOrder]:
        return self._orders.values()

    def best(self, side: Side) -> Decimal | None:
        return self._sides[side].best_price()

    def snapshot(self, levels: int = 10) -> BookSnapshot:
        return BookSnapshot(
            symbol=self.symbol,
            bids=self._sides[Side.BUY].depth(levels),
            asks=self._sides[Side.SELL].depth(levels),
            last_price=self.last_price,
        )

    def executable(self, taker: Taker) -> tuple[Decimal, Decimal]:
        """(quantity, cost) the taker would trade now against other owners' orders, without
        changing the book: what FOK and market-order buying-power checks need."""
        wanted, quantity, cost = taker.quantity, Decimal(0), Decimal(0)
        for price, level in self._sides[taker.side.opposite].levels():
            if not _crosses(taker, price):
                break
            for order in level.values():
                if order.owner == taker.owner:
                    continue
                take = min(wanted - quantity, order.remaining)
                quantity += take
                cost += take * price
                if quantity >= wanted:
                    return quantity, cost
        return quantity, cost

    def counterparties(
        self, side: Side, quantity: Decimal, limit: Decimal | None, exclude: Collection[str] = ()
    ) -> set[str]:
        """The owners of the resting orders that takers on `side` for `quantity` in all, up to
        `limit` (None: any price), would trade with now, passing over `exclude`'s orders (a
        read-only walk): whose cash and positions their fills would touch."""
        taker = Taker("", "", side, quantity, limit)
        seen, owners = Decimal(0), set()
        for price, level in self._sides[side.opposite].levels():
            if not _crosses(taker, price):
                break
            for order in level.values():
                if order.owner in exclude:
                    continue
                owners.add(order.owner)
                seen += order.remaining
                if seen >= quantity:
                    return owners
        return owners

    # --- changes ----------------------------------------------------------------------------
    def match(self, taker: Taker) -> MatchResult:
        """Trade `taker` against the opposite side as far as its limit allows."""
        result = MatchResult()
        remaining = taker.quantity
        opposite = self._sides[taker.side.opposite]
        while remaining > 0:
            best = opposite.best_price()
            if best is None or not _crosses(taker, best):
                break
            level = opposite._levels[best]
            for order in list(level.values()):
                if remaining <= 0:
                    break
                if order.owner == taker.owner:
                    opposite.remove(order)
                    del self._orders[order.order_id]
                    result.self_trade_cancelled.append(order)
                    continue
                take = min(remaining, order.remaining)
                order.remaining -= take
                opposite.adjust(best, -take)
                remaining -= take
                result.matches.append(
                    Match(order.order_id, order.owner, best, take, order.remaining)
                )
                self.last_price = best
                if order.remaining <= 0:
                    opposite.remove(order)
                    del self._orders[order.order_id]
        return result

    def add(self, order: RestingOrder) -> None:
        if order.order_id in self._orders:
            raise ValueError("order already in the book")
        if order.remaining <= 0:
            raise ValueError("a resting order needs a positive quantity")
        self._orders[order.order_id] = order
        self._sides[order.side].add(order)

    def restore(self, orders: Iterable[RestingOrder]) -> None:
        """Rebuild from stored open orders, in any order: time priority comes from `priority`."""
        for order in sorted(orders, key=lambda o: o.priority):
            self.add(order)

    def remove(self, order_id: str) -> RestingOrder | None:
        order = self._orders.pop(order_id, None)
        if order is not None:
            self._sides[order.side].remove(order)
        return order

    def reduce(self, order_id: str, remaining: Decimal) -> None:
        """Lower a resting order's quantity in place: it keeps its time priority."""
        order = self._orders[order_id]
        if not Decimal(0) < remaining <= order.remaining:
            raise ValueError("reduce needs 0 < new quantity <= current quantity")
        self._sides[order.side].adjust(order.price, remaining - order.remaining)
        order.remaining = remaining


# --- The venue interface ---------------------------------------------------------------------
class TimeInForce(StrEnum):
    DAY = "day"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """An order as sent to a venue: limit (with `price`) or market (`price` None)."""

    order_id: str
    owner: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal | None
    time_in_force: TimeInForce
    priority: int


@dataclass(slots=True)
class VenueReport:
    """What a venue did with one order, synchronously."""

    matches: list[Match] = field(default_factory=list)
    self_trade_cancelled: list[RestingOrder] = field(default_factory=list)
    #: Quantity left resting in the book (0 when nothing rests).
    resting: Decimal = Decimal(0)
    #: Quantity the venue cancelled (IOC/FOK/market remainder) and why.
    cancelled: Decimal = Decimal(0)
    cancel_reason: str | None = None

    @property
    def filled(self) -> Decimal:
        return sum((m.quantity for m in self.matches), Decimal(0))


class Venue(Protocol):
    """Where orders execute. The built-in `MatchingVenue`; broker and exchange adapters later.

    Calls come from one thread (the order engine's); implementations need not lock.
    """

    name: str

    def submit(self, order: VenueOrder) -> VenueReport: ...

    def cancel(self, symbol: str, order_id: str) -> bool: ...

    def reduce(self, symbol: str, order_id: str, remaining: Decimal) -> None: ...

    def executable(self, order: VenueOrder) -> tuple[Decimal, Decimal]: ...

    def counterparties(
        self,
        symbol: str,
        side: Side,
        quantity: Decimal,
        limit: Decimal | None,
        exclude: Collection[str] = (),
    ) -> set[str]: ...

    def snapshot(self, symbol: str, levels: int = 10) -> BookSnapshot: ...

    def restore(self, orders: Iterable[VenueOrder]) -> None: ...

    def reset(
        self, symbol: str, orders: Iterable[VenueOrder], last_price: Decimal | None
    ) -> None: ...

    def clear(self) -> None: ...


class MatchingVenue:
    """The embedded default venue: one `OrderBook` per symbol, matching in memory."""

    name = "builtin"

    def __init__(self) -> None:
        self._books: dict[str, OrderBook] = {}

    def book(self, symbol: str) -> OrderBook:
        book = self._books.get(symbol)
        if book is None:
            book = self._books[symbol] = OrderBook(symbol)
        return book

    def symbols(self) -> list[str]:
        return list(self._books)

    def submit(self, order: VenueOrder) -> VenueReport:
        book = self.book(order.symbol)
        taker = Taker(order.order_id, order.owner, order.side, order.quantity, order.price)
        report = VenueReport()
        if order.time_in_force is TimeInForce.FOK:
            available, _ = book.executable(taker)
            if available < order.quantity:
                report.cancelled = order.quantity
                report.cancel_reason = "fok-not-fillable"
                return report
        result = book.match(taker)
        report.matches = result.matches
        report.self_trade_cancelled = result.self_trade_cancelled
        left = order.quantity - result.filled
        if left <= 0:
            return report
        if order.price is None or order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
            report.cancelled = left
            report.cancel_reason = "no-liquidity" if order.price is None else "ioc-remainder"
            return report
        book.add(
            RestingOrder(order.order_id, order.owner, order.side, order.price, left, order.priority)
        )
        report.resting = left
        return report

    def cancel(self, symbol: str, order_id: str) -> bool:
        return self.book(symbol).remove(order_id) is not None

    def reduce(self, symbol: str, order_id: str, remaining: Decimal) -> None:
        self.book(symbol).reduce(order_id, remaining)

    def executable(self, order: VenueOrder) -> tuple[Decimal, Decimal]:
        taker = Taker(order.order_id, order.owner, order.side, order.quantity, order.price)
        return self.book(order.symbol).executable(taker)

    def counterparties(
        self,
        symbol: str,
        side: Side,
        quantity: Decimal,
        limit: Decimal | None,
        exclude: Collection[str] = (),
    ) -> set[str]:
        book = self._books.get(symbol)
        return set() if book is None else book.counterparties(side, quantity, limit, exclude)

    def snapshot(self, symbol: str, levels: int = 10) -> BookSnapshot:
        return self.book(symbol).snapshot(levels)

    def restore(self, orders: Iterable[VenueOrder]) -> None:
        by_symbol: dict[str, list[RestingOrder]] = {}
        for o in orders:
            if o.price is None:
                continue
            by_symbol.setdefault(o.symbol, []).append(
                RestingOrder(o.order_id, o.owner, o.side, o.price, o.quantity, o.priority)
            )
        for symbol, resting in by_symbol.items():
            self.book(symbol).restore(resting)

    def reset(self, symbol: str, orders: Iterable[VenueOrder], last_price: Decimal | None) -> None:
        """Replace one symbol's book with `orders` (in any order; time priority comes from
        `priority`) and its last trade price: the engine's way back from a command that failed
        midway, its open orders being the record of what rests."""
        book = self._books[symbol] = OrderBook(symbol)
        book.restore(
            RestingOrder(o.order_id, o.owner, o.side, o.price, o.quantity, o.priority)
            for o in orders
            if o.symbol == symbol and o.price is not None
        )
        book.last_price = last_price

    def clear(self) -> None:
        self._books.clear()

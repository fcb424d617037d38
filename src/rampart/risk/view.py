"""An account's positions and open orders as the risk gate sees them, kept exact between reads.

The gate reads an account's positions (the ledger) and open orders (the engine's memory) at most
once per `facts_ttl`. In between, it used to count an accepted order until the next read showed
it gone: a cancelled buy still "rested" for up to a second, so a sale below it was refused as a
self-trade, and a cancelled sale still "held" the shares, so selling them was refused as a naked
short. The order engine is the single writer of its orders, so it reports every change it makes
(accept, fill, modify, cancel, expiry, stop trigger) as it makes it, and `AccountView` applies the
change at once: the next decision sees the account as the engine has it.

A fill moves the position with the ledger's own arithmetic (`rampart.ledger.domain.Position`), so
the realised P&L, cost basis and the figures derived from them (gross exposure, net value, margin
requirement, unrealised P&L) agree with the ledger's to the unit. Each change recomputes only its
symbol: the cost is the account's orders in that symbol, never the whole account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from rampart.ledger.domain import Position
from rampart.risk.domain import ZERO, Holding, OpenOrderFact, PositionFact, RiskConfig, Side


@dataclass(slots=True)
class _Open:
    """One open order as counted: what it still asks for and what it had filled when last seen
    (a later report's fills are the difference)."""

    symbol: str
    buy: bool
    remaining: Decimal
    price: Decimal | None
    filled: Decimal
    filled_notional: Decimal


@dataclass(frozen=True, slots=True)
class Fill:
    """A fill the view applied: the gate's day counts follow it."""

    symbol: str
    buy: bool
    quantity: Decimal
    price: Decimal
    realised: Decimal


class AccountView:
    """Positions and open orders of one account, and their aggregates (see the module doc)."""

    __slots__ = (
        "_by_symbol",
        "_config",
        "_marks",
        "_orders",
        "_parts",
        "_positions",
        "gross",
        "holdings",
        "net_value",
        "requirement",
        "unrealised",
    )

    def __init__(self, config: RiskConfig) -> None:
        self._config = config
        self.holdings: dict[str, Holding] = {}
        self.gross = ZERO
        self.net_value = ZERO
        self.requirement = ZERO
        self.unrealised = ZERO
        self._orders: dict[str, _Open] = {}
        self._by_symbol: dict[str, dict[str, _Open]] = {}
        self._positions: dict[str, Position] = {}
        self._marks: dict[str, Decimal] = {}
        #: Per symbol: (gross, net value, requirement, unrealised) it contributes to the totals.
        self._parts: dict[str, tuple[Decimal, Decimal, Decimal, Decimal]] = {}

    # --- a whole read ------------------------------------------------------------------------
    def load(
        self,
        positions: Iterable[PositionFact],
        cost_basis: Mapping[str, Decimal],
        open_orders: Iterable[OpenOrderFact],
    ) -> None:
        """Replace everything with a read of the ledger and the engine's open orders."""
        self.holdings = {}
        self.gross = self.net_value = self.requirement = self.unrealised = ZERO
        self._orders, self._by_symbol, self._positions, self._marks = {}, {}, {}, {}
        self._parts = {}
        for p in positions:
            self._positions[p.symbol] = Position(
                "", p.symbol, p.quantity, cost_basis.get(p.symbol, ZERO)
            )
            if p.reference_price is not None:
                self._marks[p.symbol] = p.reference_price
        for index, o in enumerate(open_orders):
            # Facts without ids (a source that does not report them) are still counted; they
            # can only be matched by a later reload, never by an engine report.
            key = o.order_id or f"~{index}"
            entry = _Open(
                o.symbol,
                o.side is Side.BUY,
                o.remaining_quantity,
                o.limit_price,
                o.filled_quantity,
                o.filled_notional,
            )
            self._orders[key] = entry
            self._by_symbol.setdefault(o.symbol, {})[key] = entry
        for symbol in set(self._positions) | set(self._by_symbol):
            self._refresh(symbol)

    # --- the engine's reports ----------------------------------------------------------------
    def order_changed(
        self,
        order_id: str,
        symbol: str,
        buy: bool,
        remaining: Decimal,
        price: Decimal | None,
        is_open: bool,
        filled: Decimal,
        filled_notional: Decimal,
    ) -> Fill | None:
        """Apply an order's new state; returns the fill since it was last seen, if any.

        Raises `LookupError` for fills of an order the view never counted: the view cannot tell
        what was filled before, and must be read again."""
        old = self._orders.get(order_id)
        fill: Fill | None = None
        if old is not None and filled > old.filled:
            quantity = filled - old.filled
            fill = self._fill(symbol, buy, quantity, (filled_notional - old.filled_notional))
        elif old is None and is_open and filled > 0:
            raise LookupError(order_id)
        if old is None and not is_open and fill is None:
            return None  # a refused order, or one the view never counted: nothing changes
        if is_open:
            entry = _Open(symbol, buy, remaining, price, filled, filled_notional)
            self._orders[order_id] = entry
            self._by_symbol.setdefault(symbol, {})[order_id] = entry
        else:
            self._orders.pop(order_id, None)
            orders = self._by_symbol.get(symbol)
            if orders is not None:
                orders.pop(order_id, None)
                if not orders:
                    del self._by_symbol[symbol]
        self._refresh(symbol)
        return fill

    def _fill(self, symbol: str, buy: bool, quantity: Decimal, notional: Decimal) -> Fill:
        price = notional / quantity
        position = self._positions.get(symbol)
        if position is None:
            position = self._positions[symbol] = Position("", symbol)
        realised = position.apply_fill(buy, quantity, price)
        # A symbol first held now is marked at its fill price until the next read.
        self._marks.setdefault(symbol, price)
        return Fill(symbol, buy, quantity, price, realised)

    def _refresh(self, symbol: str) -> None:
        """Recompute one symbol's holding and its share of the totals (as `summarise_holdings`)."""
        config = self._config
        position = self._positions.get(symbol)
        quantity = position.quantity if position is not None else ZERO
        mark = self._marks.get(symbol)
        buys = sells = orders_value = ZERO
        high_buy: Decimal | None = None
        low_sell: Decimal | None = None
        market_buy = market_sell = False
        for o in self._by_symbol.get(symbol, {}).values():
            price = o.price if o.price is not None else mark
            if price is not None:
                orders_value += o.remaining * price
            if o.buy:
                buys += o.remaining
                if o.price is None:
                    market_buy = True
                elif high_buy is None or o.price > high_buy:
                    high_buy = o.price
            else:
                sells += o.remaining
                if o.price is None:
                    market_sell = True
                elif low_sell is None or o.price < low_sell:
                    low_sell = o.price
        if quantity == 0 and symbol not in self._by_symbol:
            self.holdings.pop(symbol, None)
        else:
            self.holdings[symbol] = Holding(
                quantity, buys, sells, high_buy, low_sell, market_buy, market_sell
            )
        gross, net, requirement, unrealised = orders_value, ZERO, ZERO, ZERO
        if mark is not None and quantity != 0:
            value = quantity * mark
            rate = config.long_margin_rate if value > 0 else config.short_margin_rate
            gross += abs(value)
            net = value
            requirement = abs(value) * rate
            unrealised = value - (position.cost_basis if position is not None else ZERO)
        old = self._parts.get(symbol, (ZERO, ZERO, ZERO, ZERO))
        self.gross += gross - old[0]
        self.net_value += net - old[1]
        self.requirement += requirement - old[2]
        self.unrealised += unrealised - old[3]
        self._parts[symbol] = (gross, net, requirement, unrealised)

    # --- reads for the account's own risk page -----------------------------------------------
    def positions(self) -> dict[str, tuple[Decimal, Decimal | None]]:
        """Quantity and mark of each symbol held."""
        return {
            s: (p.quantity, self._marks.get(s)) for s, p in self._positions.items() if p.quantity
        }

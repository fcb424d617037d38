"""Building the account snapshot's aggregates from positions and open orders."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from rampart.risk.domain.limits import RiskConfig
from rampart.risk.domain.snapshots import Holding
from rampart.risk.domain.vocabulary import ZERO, Side

_BUY = Side.BUY


@dataclass(frozen=True, slots=True)
class PositionFact:
    symbol: str
    quantity: Decimal  # signed
    reference_price: Decimal | None


@dataclass(frozen=True, slots=True)
class OpenOrderFact:
    symbol: str
    side: Side
    remaining_quantity: Decimal
    limit_price: Decimal | None  # None: a resting market or stop order
    #: The engine's id and what the order had filled when read: the gate matches the engine's
    #: later reports of the order to it (`rampart.risk.view`). Empty: not reported.
    order_id: str = ""
    filled_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO


def summarise_holdings(
    positions: Iterable[PositionFact],
    open_orders: Iterable[OpenOrderFact],
    config: RiskConfig,
) -> tuple[dict[str, Holding], Decimal, Decimal, Decimal]:
    """Aggregate positions and open orders: (holdings, gross exposure, long minus short market
    value, intraday margin requirement)."""
    quantity: dict[str, Decimal] = {}
    prices: dict[str, Decimal] = {}
    buys: dict[str, Decimal] = {}
    sells: dict[str, Decimal] = {}
    high_buy: dict[str, Decimal] = {}
    low_sell: dict[str, Decimal] = {}
    market_buy: set[str] = set()
    market_sell: set[str] = set()
    gross = ZERO
    net_value = ZERO
    requirement = ZERO
    for p in positions:
        quantity[p.symbol] = quantity.get(p.symbol, ZERO) + p.quantity
        if p.reference_price is not None:
            prices[p.symbol] = p.reference_price
            value = p.quantity * p.reference_price
            gross += abs(value)
            net_value += value
            rate = config.long_margin_rate if value > 0 else config.short_margin_rate
            requirement += abs(value) * rate
    for order in open_orders:
        symbol = order.symbol
        price = order.limit_price if order.limit_price is not None else prices.get(symbol)
        if price is not None:
            gross += order.remaining_quantity * price
        if order.side is _BUY:
            buys[symbol] = buys.get(symbol, ZERO) + order.remaining_quantity
            if order.limit_price is None:
                market_buy.add(symbol)
            elif symbol not in high_buy or order.limit_price > high_buy[symbol]:
                high_buy[symbol] = order.limit_price
        else:
            sells[symbol] = sells.get(symbol, ZERO) + order.remaining_quantity
            if order.limit_price is None:
                market_sell.add(symbol)
            elif symbol not in low_sell or order.limit_price < low_sell[symbol]:
                low_sell[symbol] = order.limit_price
    holdings = {
        symbol: Holding(
            quantity=quantity.get(symbol, ZERO),
            open_buy_quantity=buys.get(symbol, ZERO),
            open_sell_quantity=sells.get(symbol, ZERO),
            highest_open_buy=high_buy.get(symbol),
            lowest_open_sell=low_sell.get(symbol),
            open_market_buy=symbol in market_buy,
            open_market_sell=symbol in market_sell,
        )
        for symbol in set(quantity) | set(buys) | set(sells)
    }
    return holdings, gross, net_value, requirement

"""The engine's memory of open orders, and the maps kept with it so that no check scans them.

Pure: the core (`rampart.trading.core`) changes it as orders open and close; a rebuild fills it
from the open orders the store read.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from rampart.kernel.money import ZERO
from rampart.ledger.domain import Position
from rampart.trading.domain import Order, OrderSide


class OpenOrders:
    """Every open order of the venue, by id, by user, by (user, symbol), and its stops."""

    __slots__ = ("by_id", "by_user", "count", "pending_sell", "shorts", "stops")

    def __init__(self) -> None:
        self.by_id: dict[str, Order] = {}
        #: Open orders per (user, symbol): the pre-trade context's count without a scan.
        self.count: dict[tuple[str, str], int] = {}
        #: Open orders per user: the risk gate reads an account's open orders from here
        #: (`OrderEngine.open_orders_of`) instead of paging through them in the database.
        self.by_user: dict[str, dict[str, Order]] = {}
        #: Untriggered stop orders per symbol.
        self.stops: dict[str, dict[str, Order]] = {}
        #: What each (user, symbol) has offered for sale (long sales) in open orders.
        self.pending_sell: dict[tuple[str, str], Decimal] = {}
        #: Symbol -> the users short in it: whose collateral a new last price re-marks.
        self.shorts: dict[str, set[str]] = {}

    def clear(self) -> None:
        for table in (self.by_id, self.count, self.by_user, self.stops, self.pending_sell):
            table.clear()
        self.shorts.clear()

    def get(self, order_id: str) -> Order | None:
        return self.by_id.get(order_id)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self.by_id

    def __len__(self) -> int:
        return len(self.by_id)

    def orders(self) -> Iterable[Order]:
        return self.by_id.values()

    def of_user(self, user_id: str) -> Iterable[Order]:
        return self.by_user.get(user_id, {}).values()

    def matching(self, account_id: str | None, symbol: str | None) -> list[Order]:
        """The open orders of an account and/or a symbol (neither: all of them)."""
        return [
            o
            for o in self.by_id.values()
            if (account_id is None or o.user_id == account_id)
            and (symbol is None or o.symbol == symbol)
        ]

    def add(self, order: Order) -> None:
        self.by_id[order.id] = order
        self.by_user.setdefault(order.user_id, {})[order.id] = order
        key = (order.user_id, order.symbol)
        self.count[key] = self.count.get(key, 0) + 1

    def remove(self, order: Order) -> None:
        if self.by_id.pop(order.id, None) is None:
            return
        mine = self.by_user.get(order.user_id)
        if mine is not None:
            mine.pop(order.id, None)
            if not mine:
                del self.by_user[order.user_id]
        key = (order.user_id, order.symbol)
        left = self.count.get(key, 0) - 1
        if left > 0:
            self.count[key] = left
        else:
            self.count.pop(key, None)

    def add_pending_sell(self, order: Order, quantity: Decimal) -> None:
        """Count `quantity` more (or, negative, less) of a long sale as offered."""
        key = (order.user_id, order.symbol)
        self.pending_sell[key] = self.pending_sell.get(key, ZERO) + quantity

    def drop_settled_sell(self, order: Order) -> None:
        key = (order.user_id, order.symbol)
        if self.pending_sell.get(key) == 0:
            del self.pending_sell[key]

    def recount_pending_sell(self, user_id: str, symbol: str) -> None:
        pending = sum(
            (
                o.remaining
                for o in self.of_user(user_id)
                if o.symbol == symbol and o.side is OrderSide.SELL
            ),
            ZERO,
        )
        if pending:
            self.pending_sell[(user_id, symbol)] = pending
        else:
            self.pending_sell.pop((user_id, symbol), None)

    def index_short(self, position: Position) -> None:
        users = self.shorts.get(position.symbol)
        if position.quantity < 0:
            if users is None:
                users = self.shorts[position.symbol] = set()
            users.add(position.user_id)
        elif users is not None:
            users.discard(position.user_id)
            if not users:
                del self.shorts[position.symbol]

"""Taking back one command of an order-engine batch, alone.

The engine runs a batch's commands in memory and writes them together. A command that fails
midway (a bug, a fault it met) must leave no trace, while the batch commits the others: so, as a
command first touches something, what it was is saved here, and put back if the command fails.

Saved: the orders it changed (their fields, and whether the batch had them already), the orders
it created, the cash accounts and positions it used (a position's collateral with it), the last
trade price of each book it sent an
order to, and how long the batch's lists were when it started. The engine's maps of open orders,
stops and pending sells, and the books themselves, follow from the orders: the core re-derives
them for the symbols the command touched (`TradingCore.take_back`), and its index of short
positions (marked to market) for the positions put back.

Saving costs a dictionary look-up and a tuple per thing touched, paid by every command; putting
back runs only on failure.
"""

from __future__ import annotations

import operator
from collections.abc import Collection
from decimal import Decimal
from typing import Any

from rampart.ledger.domain import CashAccount, Position
from rampart.trading.domain import Order

#: The fields of an order that change after it is created (and are written on each change).
MUTABLE_ORDER_FIELDS = (
    "quantity",
    "limit_price",
    "stop_price",
    "status",
    "filled_quantity",
    "filled_notional",
    "reserved",
    "priority",
    "triggered",
    "reason",
    "version",
    "updated_at",
)
_ORDER_STATE = operator.attrgetter(*MUTABLE_ORDER_FIELDS)
_POSITION_FIELDS = ("quantity", "cost_basis", "realised_pnl", "margin_held", "new", "dirty")
_POSITION_STATE = operator.attrgetter(*_POSITION_FIELDS)


class CommandUndo:
    """What one command has changed so far, each thing as it was before the command."""

    __slots__ = ("_accounts", "_positions", "created", "last_prices", "lengths", "orders")

    def __init__(self, lengths: tuple[int, ...]) -> None:
        #: Order id -> (order, its fields before, whether the batch already had it).
        self.orders: dict[str, tuple[Order, tuple[Any, ...], bool]] = {}
        self.created: list[Order] = []
        #: Symbol -> the book's last trade price before the command traded in it.
        self.last_prices: dict[str, Decimal | None] = {}
        #: The lengths of the batch's lists (fills, outbox, ...) when the command started.
        self.lengths = lengths
        self._accounts: dict[str, tuple[CashAccount, Decimal, Decimal, bool]] = {}
        self._positions: dict[tuple[str, str], tuple[Position, tuple[Any, ...]]] = {}

    def save_order(self, order: Order, batch_orders: Collection[str]) -> None:
        if order.id not in self.orders:
            self.orders[order.id] = (order, _ORDER_STATE(order), order.id in batch_orders)

    def save_account(self, account: CashAccount) -> None:
        if account.account_id not in self._accounts:
            self._accounts[account.account_id] = (
                account,
                account.balance,
                account.reserved,
                account.dirty,
            )

    def save_position(self, key: tuple[str, str], position: Position) -> None:
        if key not in self._positions:
            self._positions[key] = (position, _POSITION_STATE(position))

    def save_last_price(self, symbol: str, price: Decimal | None) -> None:
        if symbol not in self.last_prices:
            self.last_prices[symbol] = price

    def positions(self) -> list[Position]:
        """The positions the command used (after `restore`, as they were before it)."""
        return [position for position, _ in self._positions.values()]

    def restore(self) -> list[Order]:
        """Put back the saved fields of orders, accounts and positions; returns every order the
        command changed or created."""
        for order, saved, _ in self.orders.values():
            for name, value in zip(MUTABLE_ORDER_FIELDS, saved, strict=True):
                setattr(order, name, value)
        for account, balance, reserved, dirty in self._accounts.values():
            account.balance, account.reserved, account.dirty = balance, reserved, dirty
        for position, state in self._positions.values():
            for name, value in zip(_POSITION_FIELDS, state, strict=True):
                setattr(position, name, value)
        touched = [order for order, _, _ in self.orders.values()]
        return touched + [o for o in self.created if o.id not in self.orders]

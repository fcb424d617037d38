"""Executing open orders: matching in the venue, fills, the journal, positions, reservations,
stops, and the record of every change (audit entry, outbox row, stream event).

Pure: it works on the batch (`rampart.trading.batch`) and the engine's memory of open orders
(`rampart.trading.open_orders`); what the batch did not load it reads through `batch.load`.
Every change first saves what it changes (`rampart.trading.undo`), so that a failed command can
be taken back alone.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.kernel.money import ZERO
from rampart.ledger.domain import (
    CLEARING_ACCOUNT,
    CashAccount,
    JournalEntry,
    Position,
    Posting,
    cash_account_id,
    ledger_ceiling,
    short_collateral,
)
from rampart.trading.batch import Batch
from rampart.trading.domain import Fill, Order, OrderSide, OrderStatus, OrderType, Reason, fmt
from rampart.trading.open_orders import OpenOrders
from rampart.trading.stream import StreamEvent
from rampart.trading.undo import CommandUndo
from rampart.venue.domain import MatchingVenue, VenueOrder

_CANCEL_REASONS = {
    "fok-not-fillable": Reason.FOK_NOT_FILLABLE,
    "ioc-remainder": Reason.IOC_REMAINDER,
    "no-liquidity": Reason.NO_LIQUIDITY,
}


class Execution:
    """Sends open orders to the venue and applies what happened to them."""

    def __init__(
        self, venue: MatchingVenue, book: OpenOrders, short_initial_margin: Decimal
    ) -> None:
        self.venue = venue
        self.book = book
        #: Regulation T initial margin on a short sale: a short-sale order holds this rate of
        #: its value; a short position holds its value plus this rate of it, marked to the last
        #: trade (`rampart.ledger.domain`).
        self.short_initial_margin = short_initial_margin
        #: Called with each order the moment a change to it is recorded (see `OrderEngine`).
        self.order_listeners: list[Callable[[Order], None]] = []
        self.priority = 0

    # --- what a command touches ---------------------------------------------------------------
    def account(self, batch: Batch, user_id: str) -> CashAccount:
        key = cash_account_id(user_id)
        account = batch.ledger.accounts.get(key)
        if account is None:
            batch.load.accounts(batch.ledger, [user_id])
            account = batch.ledger.accounts[key]
        if batch.undo is not None:
            batch.undo.save_account(account)
        return account

    def position(self, batch: Batch, user_id: str, symbol: str) -> Position:
        key = (user_id, symbol)
        position = batch.ledger.positions.get(key)
        if position is None:
            batch.load.positions(batch.ledger, [key])
            position = batch.ledger.positions[key]
        if batch.undo is not None:
            batch.undo.save_position(key, position)
        return position

    @staticmethod
    def touch(batch: Batch, order: Order) -> None:
        """Save an order's fields before the command changes them (`rampart.trading.undo`)."""
        if batch.undo is not None:
            batch.undo.save_order(order, batch.orders)

    @staticmethod
    def venue_order(order: Order) -> VenueOrder:
        return VenueOrder(
            order_id=order.id,
            owner=order.user_id,
            symbol=order.symbol,
            side=order.side.book_side,
            quantity=order.remaining,
            price=order.working_price,
            time_in_force=order.time_in_force,
            priority=order.priority,
        )

    # --- execution ---------------------------------------------------------------------------
    def execute(self, batch: Batch, order: Order, actor: str) -> None:
        """Send an open order to the venue and apply what happened."""
        self.touch(batch, order)
        if batch.undo is not None:
            batch.undo.save_last_price(order.symbol, self.venue.book(order.symbol).last_price)
        self.priority += 1
        order.priority = self.priority
        report = self.venue.submit(self.venue_order(order))
        batch.symbols.add(order.symbol)
        for resting in report.self_trade_cancelled:
            maker = self.book.get(resting.order_id)
            if maker is not None:
                self.finish(
                    batch, maker, OrderStatus.CANCELLED, Reason.SELF_TRADE_PREVENTED, "system"
                )
        for match in report.matches:
            maker = self.book.by_id[match.maker_id]
            self._trade(batch, order, maker, match.price, match.quantity, actor)
        if report.cancelled > 0 and order.is_open:
            reason = _CANCEL_REASONS.get(report.cancel_reason or "", Reason.IOC_REMAINDER)
            self.finish(batch, order, OrderStatus.CANCELLED, reason, actor)

    def _trade(
        self,
        batch: Batch,
        taker: Order,
        maker: Order,
        price: Decimal,
        quantity: Decimal,
        actor: str,
    ) -> None:
        buyer, seller = (taker, maker) if taker.side is OrderSide.BUY else (maker, taker)
        buyer_cash = self.account(batch, buyer.user_id)
        seller_cash = self.account(batch, seller.user_id)
        notional = price * quantity
        trade_id = new_id()
        if batch.undo is not None:
            batch.undo.save_account(batch.ledger.accounts[CLEARING_ACCOUNT])
        batch.ledger.post(
            JournalEntry(
                new_id(),
                "trade",
                trade_id,
                (
                    Posting(buyer_cash.account_id, -notional),
                    Posting(CLEARING_ACCOUNT, notional),
                    Posting(CLEARING_ACCOUNT, -notional),
                    Posting(seller_cash.account_id, notional),
                ),
            )
        )
        for order, liquidity in ((taker, "taker"), (maker, "maker")):
            self._apply_fill(
                batch,
                order,
                price,
                quantity,
                trade_id,
                liquidity,
                actor if order is taker else "system",
            )
        batch.events.append(
            StreamEvent(
                "trade",
                {
                    "symbol": taker.symbol,
                    "price": fmt(price),
                    "quantity": fmt(quantity),
                    "trade_id": trade_id,
                    "at": batch.now.isoformat(),
                    "aggressor": taker.side.book_side.value,
                },
                symbol=taker.symbol,
            )
        )

    def _apply_fill(
        self,
        batch: Batch,
        order: Order,
        price: Decimal,
        quantity: Decimal,
        trade_id: str,
        liquidity: str,
        actor: str,
    ) -> None:
        self.touch(batch, order)
        account = self.account(batch, order.user_id)
        if order.reserved > 0:
            # A limit order held its limit price per unit; a market order held the exact cost
            # (a short sale: its initial margin rate of either).
            cost = (order.working_price or price) * quantity
            if order.side is OrderSide.SELL_SHORT:
                cost = ledger_ceiling(cost * self.short_initial_margin)
            release = min(order.reserved, cost)
            account.release(release)
            order.reserved -= release
        position = self.position(batch, order.user_id, order.symbol)
        realised = position.apply_fill(order.side is OrderSide.BUY, quantity, price)
        # The trade's price is the symbol's last: the position's collateral follows it.
        account.hold_for(
            position, short_collateral(position.quantity, price, self.short_initial_margin)
        )
        self.book.index_short(position)
        order.filled_quantity += quantity
        order.filled_notional += price * quantity
        if order.side is OrderSide.SELL:
            self.book.add_pending_sell(order, -quantity)
        fill = Fill(
            new_id(),
            trade_id,
            order.id,
            order.user_id,
            order.symbol,
            order.side,
            price,
            quantity,
            liquidity,
            batch.now,
            realised,
        )
        batch.fills.append(fill)
        batch.executions.append((order.user_id, order.symbol, order.side.value, quantity))
        batch.events.append(StreamEvent("fill", fill.view(), user_id=order.user_id))
        status = OrderStatus.FILLED if order.remaining == 0 else OrderStatus.PARTIALLY_FILLED
        before = order.transition(status, batch.now)
        self.record(
            batch,
            order,
            before,
            status.value,
            actor,
            {"fill_price": str(price), "fill_quantity": str(quantity)},
        )
        if status is OrderStatus.FILLED:
            self._close(batch, order)

    def finish(
        self, batch: Batch, order: Order, status: OrderStatus, reason: str, actor: str
    ) -> None:
        """Move an open order to a final state (cancelled, expired) and free what it held."""
        self.touch(batch, order)
        self.venue.cancel(order.symbol, order.id)
        stops = self.book.stops.get(order.symbol)
        if stops is not None:
            stops.pop(order.id, None)
        if order.side is OrderSide.SELL:
            self.book.add_pending_sell(order, -order.remaining)
        before = order.transition(status, batch.now, reason)
        self.record(batch, order, before, status.value, actor)
        self._close(batch, order)
        batch.symbols.add(order.symbol)

    def _close(self, batch: Batch, order: Order) -> None:
        if order.reserved > 0:
            self.account(batch, order.user_id).release(order.reserved)
            order.reserved = ZERO
        self.book.remove(order)
        self.book.drop_settled_sell(order)

    def trigger_stops(self, batch: Batch, symbol: str) -> None:
        """Trigger stop orders the last trade price has reached, until none is left to trigger."""
        for _ in range(10_000):
            stops = self.book.stops.get(symbol)
            last = self.venue.book(symbol).last_price
            if not stops or last is None:
                return
            ready = [
                o
                for o in stops.values()
                if o.stop_price is not None
                and (
                    (o.side is OrderSide.BUY and last >= o.stop_price)
                    or (o.side is not OrderSide.BUY and last <= o.stop_price)
                )
            ]
            if not ready:
                return
            order = min(ready, key=lambda o: o.priority)
            self.touch(batch, order)
            del stops[order.id]
            order.triggered = True
            before = order.transition(order.status, batch.now)
            self.record(batch, order, before, "triggered", "system", {"last_price": str(last)})
            if order.type is OrderType.STOP and order.reserves_cash:
                # A stop becomes a market order: hold exactly what it will cost now.
                account = self.account(batch, order.user_id)
                account.release(order.reserved)
                order.reserved = ZERO
                fillable, cost = self.venue.executable(self.venue_order(order))
                if fillable <= 0:
                    self.finish(batch, order, OrderStatus.CANCELLED, Reason.NO_LIQUIDITY, "system")
                    continue
                position = self.position(batch, order.user_id, order.symbol)
                cost = self.reservation(order, position, order.remaining, cost)
                if cost > 0 and cost > account.buying_power:
                    self.finish(
                        batch,
                        order,
                        OrderStatus.CANCELLED,
                        Reason.INSUFFICIENT_BUYING_POWER,
                        "system",
                    )
                    continue
                if cost:
                    account.reserve(cost)
                order.reserved = cost
            self.execute(batch, order, "system")

    # --- short-sale margin (Regulation T) ----------------------------------------------------
    def reservation(
        self, order: Order, position: Position, quantity: Decimal, cost: Decimal
    ) -> Decimal:
        """What an order that reserves cash holds for `quantity` costing `cost` at its price.

        A short sale holds the initial margin rate of its value: its proceeds are credited when
        it fills and held, with that margin, as the short's collateral. A buy holds its cost,
        less, for the part that covers a short (not already claimed by the account's other open
        buys), that part's share of the short's collateral, which its fill releases."""
        if order.side is OrderSide.SELL_SHORT:
            return ledger_ceiling(cost * self.short_initial_margin)
        short = -position.quantity
        if short <= 0 or position.margin_held <= 0:
            return cost
        claimed = sum(
            (
                o.remaining
                for o in self.book.of_user(order.user_id)
                if o.symbol == order.symbol and o.side is OrderSide.BUY and o.id != order.id
            ),
            ZERO,
        )
        covering = min(quantity, max(short - claimed, ZERO))
        if covering <= 0:
            return cost
        share = position.margin_held * covering / short
        return max(ledger_ceiling(cost - share), ZERO)

    def mark_shorts(self, batch: Batch, undo: CommandUndo) -> None:
        """Mark every short in the symbols whose last price the command moved to that price:
        a rise raises the collateral held (and lowers buying power), a fall frees some."""
        for symbol, before in undo.last_prices.items():
            last = self.venue.book(symbol).last_price
            users = self.book.shorts.get(symbol)
            if last is None or last == before or not users:
                continue
            keys = [(user_id, symbol) for user_id in sorted(users)]
            missing_accounts = [
                u for u, _ in keys if cash_account_id(u) not in batch.ledger.accounts
            ]
            missing_positions = [k for k in keys if k not in batch.ledger.positions]
            if missing_accounts or missing_positions:
                batch.load.accounts(batch.ledger, missing_accounts)
                batch.load.positions(batch.ledger, missing_positions)
            for user_id, _ in keys:
                position = self.position(batch, user_id, symbol)
                self.account(batch, user_id).hold_for(
                    position, short_collateral(position.quantity, last, self.short_initial_margin)
                )

    # --- recording ---------------------------------------------------------------------------
    def record(
        self,
        batch: Batch,
        order: Order,
        before: OrderStatus,
        action: str,
        actor: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Record a change to an order: its audit entry, outbox row and stream event."""
        batch.orders[order.id] = order
        for listener in self.order_listeners:
            listener(order)
        details: dict[str, Any] = {
            "from": before.value,
            "to": order.status.value,
            "user_id": order.user_id,
            "symbol": order.symbol,
            "side": order.side.value,
            "type": order.type.value,
            "quantity": str(order.quantity),
            "filled_quantity": str(order.filled_quantity),
            "version": order.version,
        }
        if order.limit_price is not None:
            details["limit_price"] = str(order.limit_price)
        if order.reason is not None:
            details["reason"] = order.reason
        if extra:
            details.update(extra)
        batch.audit_event(
            AuditEvent(
                action=f"order.{action}", subject=f"order:{order.id}", details=details, actor=actor
            )
        )
        view = batch.views[order.id] = order.view()
        batch.outbox.append(
            {
                "id": new_id(),
                "topic": "order.updated",
                "payload": {"event": action, "user_id": order.user_id, "order": view},
                "created_at": batch.now,
                "available_at": batch.now,
                "attempts": 0,
            }
        )
        batch.events.append(StreamEvent("order", {"event": action, **view}, user_id=order.user_id))

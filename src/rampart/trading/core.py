"""The order engine's pure core: what each command does to orders, cash and positions.

Given a batch (`rampart.trading.batch`: the accounts, positions and instruments the store loaded
for it) and a command (`rampart.trading.commands`), the core places, modifies, cancels and
expires orders, runs the entry checks and the registered pre-trade checks, and executes orders
in the venue (`rampart.trading.execution`): every change lands in the batch as values (orders,
fills, journal entries, audit entries, outbox rows, stream events) for the store to write. It
imports no database code; what a batch did not load it reads through the batch's `load` port.

Every new and modified order passes the entry checks (`rampart.trading.entry`) before the venue.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.kernel.money import ZERO
from rampart.trading.batch import Batch
from rampart.trading.commands import (
    Cancel,
    CancelAll,
    CancelOpen,
    ClientOrderIdReusedError,
    Command,
    ExpireDay,
    Modify,
    ModifyRejectedError,
    OrderNotFoundError,
    OrderNotOpenError,
    Place,
    PlaceResult,
)
from rampart.trading.domain import (
    InvalidOrderError,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Reason,
    check_instrument_limits,
    fmt,
)
from rampart.trading.entry import EntryChecks
from rampart.trading.execution import Execution
from rampart.trading.open_orders import OpenOrders
from rampart.trading.ports import PreTradeCheck
from rampart.trading.prefetch import BatchNeeds, needs_of
from rampart.trading.publish import MarketPublisher
from rampart.trading.undo import CommandUndo
from rampart.venue.domain import MatchingVenue, TimeInForce, VenueOrder


class TradingCore:
    """The books of one venue, and the commands that change them."""

    def __init__(
        self,
        venue: MatchingVenue,
        checks: list[PreTradeCheck],
        short_initial_margin: Decimal,
    ) -> None:
        self.venue = venue
        self.book = OpenOrders()
        self.execution = Execution(venue, self.book, short_initial_margin)
        self.market = MarketPublisher(venue)
        self.entry = EntryChecks(venue, self.book, self.execution, self.market, checks)

    def needs(self, commands: list[Command]) -> BatchNeeds:
        """What a batch of these commands will touch: the store loads it before they run."""
        return needs_of(commands, self.book, self.venue)

    def adopt_client_orders(self, batch: Batch, orders: list[Order]) -> None:
        """The orders already placed with the batch's client order ids (the open ones as held
        in memory): a retry finds its first order."""
        for order in orders:
            assert order.client_order_id is not None
            key = (order.user_id, order.client_order_id)
            batch.client_ids[key] = self.book.get(order.id) or order

    # --- commands ----------------------------------------------------------------------------
    def handle(self, batch: Batch, command: Command) -> Any:
        """Run one command of the batch; its changes are saved in `batch.undo` as it goes."""
        run = self.execution
        if isinstance(command, Place):
            result: Any = self._place(batch, command)
        elif isinstance(command, Modify):
            result = self._modify(batch, command)
        elif isinstance(command, Cancel):
            order = self._owned_open(batch, command.user_id, command.order_id)
            run.finish(batch, order, OrderStatus.CANCELLED, Reason.USER_CANCELLED, command.actor)
            result = batch.view(order)
        elif isinstance(command, CancelAll):
            mine = self.book.matching(command.user_id, command.symbol)
            for order in sorted(mine, key=lambda o: o.priority):
                run.finish(
                    batch, order, OrderStatus.CANCELLED, Reason.USER_CANCELLED, command.actor
                )
            result = [batch.view(o) for o in mine]
        elif isinstance(command, CancelOpen):
            matching = self.book.matching(command.account_id, command.symbol)
            for order in sorted(matching, key=lambda o: o.priority):
                run.finish(batch, order, OrderStatus.CANCELLED, command.reason[:40], command.actor)
            result = len(matching)
        elif isinstance(command, ExpireDay):
            day = [o for o in self.book.orders() if o.time_in_force is TimeInForce.DAY]
            for order in day:
                run.finish(batch, order, OrderStatus.EXPIRED, Reason.END_OF_DAY, command.actor)
            result = len(day)
        else:
            raise TypeError(f"unknown command {type(command).__name__}")
        if batch.undo is not None:
            run.mark_shorts(batch, batch.undo)
        return result

    def _place(self, batch: Batch, command: Place) -> PlaceResult:
        ticket = command.ticket
        if ticket.client_order_id is not None:
            existing = batch.client_ids.get((command.user_id, ticket.client_order_id))
            if existing is not None:
                if not ticket.same_as(existing):
                    raise ClientOrderIdReusedError(
                        "A different order already used this client_order_id."
                    )
                return PlaceResult(existing.view(), created=False)
        instrument = batch.instruments.get(ticket.symbol)
        if instrument is not None:
            check_instrument_limits(
                instrument, ticket.quantity, ticket.limit_price, ticket.stop_price
            )
        order = Order(
            id=new_id(),
            user_id=command.user_id,
            symbol=ticket.symbol,
            side=ticket.side,
            type=ticket.type,
            time_in_force=ticket.time_in_force,
            quantity=ticket.quantity,
            limit_price=ticket.limit_price,
            stop_price=ticket.stop_price,
            client_order_id=ticket.client_order_id,
            created_at=batch.now,
            updated_at=batch.now,
        )
        if batch.undo is not None:
            batch.undo.created.append(order)
        batch.orders[order.id] = order
        if ticket.client_order_id is not None:
            batch.client_ids[(command.user_id, ticket.client_order_id)] = order
        run = self.execution
        reason: str | None
        reservation = ZERO
        if instrument is None:
            reason = Reason.UNKNOWN_INSTRUMENT
        else:
            reason, reservation = self.entry.check(
                batch,
                order,
                instrument,
                "new",
                order.quantity,
                actor=command.actor,
                permissions=command.permissions,
                credential_id=command.credential_id,
            )
        if reason is not None:
            order.transition(OrderStatus.REJECTED, batch.now, reason)
            run.record(batch, order, OrderStatus.NEW, "rejected", command.actor)
            return PlaceResult(batch.view(order), created=True)
        if reservation:
            run.account(batch, order.user_id).reserve(reservation)
            order.reserved = reservation
        order.transition(OrderStatus.ACCEPTED, batch.now)
        run.record(batch, order, OrderStatus.NEW, "accepted", command.actor)
        self.book.add(order)
        if order.side is OrderSide.SELL:
            self.book.add_pending_sell(order, order.quantity)
        if order.is_stop:
            self.book.stops.setdefault(order.symbol, {})[order.id] = order
        else:
            run.execute(batch, order, command.actor)
        run.trigger_stops(batch, order.symbol)
        return PlaceResult(batch.view(order), created=True)

    def _modify(self, batch: Batch, command: Modify) -> dict[str, Any]:
        order = self._owned_open(batch, command.user_id, command.order_id)
        if order.working_price is None and not order.is_stop:
            raise OrderNotOpenError("Market orders cannot be modified.")
        if order.is_stop and order.triggered and order.type is OrderType.STOP:
            raise OrderNotOpenError("A triggered stop order works at market.")
        if command.limit_price is not None and order.limit_price is None:
            raise InvalidOrderError("Only limit and stop-limit orders have a limit price.")
        if command.stop_price is not None and (order.stop_price is None or order.triggered):
            raise InvalidOrderError("Only untriggered stop orders have a stop price to change.")
        quantity = command.quantity if command.quantity is not None else order.quantity
        limit = command.limit_price if command.limit_price is not None else order.limit_price
        stop = command.stop_price if command.stop_price is not None else order.stop_price
        if quantity <= order.filled_quantity:
            raise InvalidOrderError("The new quantity must exceed the quantity already filled.")
        candidate = Order(
            id=order.id,
            user_id=order.user_id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            time_in_force=order.time_in_force,
            quantity=quantity,
            limit_price=limit,
            stop_price=stop,
            client_order_id=order.client_order_id,
            created_at=order.created_at,
            updated_at=batch.now,
            status=order.status,
            filled_quantity=order.filled_quantity,
            triggered=order.triggered,
        )
        if order.symbol not in batch.instruments:
            batch.instruments.update(batch.load.instruments([order.symbol]))
        instrument = batch.instruments.get(order.symbol)
        if instrument is None:
            raise ModifyRejectedError(Reason.UNKNOWN_INSTRUMENT)
        # The new figures only, and a quantity only when it grows: an order placed before its
        # instrument's limits were tightened may still be reduced.
        check_instrument_limits(
            instrument,
            command.quantity if quantity > order.quantity else None,
            command.limit_price,
            command.stop_price,
        )
        remaining = quantity - order.filled_quantity
        reason, reservation = self.entry.check(
            batch,
            candidate,
            instrument,
            "modify",
            remaining,
            actor=command.actor,
            permissions=command.permissions,
            credential_id=command.credential_id,
            replaced=order,
        )
        run = self.execution
        if reason is not None:
            batch.audit_event(
                AuditEvent(
                    action="order.modify.rejected",
                    outcome="failure",
                    subject=f"order:{order.id}",
                    details={"reason": reason, "user_id": order.user_id},
                    actor=command.actor,
                )
            )
            raise ModifyRejectedError(reason)
        run.touch(batch, order)
        keeps_priority = (
            limit == order.limit_price and stop == order.stop_price and (quantity <= order.quantity)
        )
        account = run.account(batch, order.user_id)
        if order.reserves_cash:
            if reservation > order.reserved:
                account.reserve(reservation - order.reserved)
            else:
                account.release(order.reserved - reservation)
            order.reserved = reservation
        if order.side is OrderSide.SELL:
            self.book.add_pending_sell(order, remaining - order.remaining)
        previous = {
            "quantity": str(order.quantity),
            "limit_price": fmt(order.limit_price),
            "stop_price": fmt(order.stop_price),
        }
        order.quantity, order.limit_price, order.stop_price = quantity, limit, stop
        before = order.transition(order.status, batch.now)
        run.record(
            batch,
            order,
            before,
            "modified",
            command.actor,
            {"previous": previous, "priority_kept": keeps_priority},
        )
        if order.is_stop and not order.triggered:
            pass
        elif keeps_priority:
            self.venue.reduce(order.symbol, order.id, order.remaining)
        else:
            self.venue.cancel(order.symbol, order.id)
            run.execute(batch, order, command.actor)
        run.trigger_stops(batch, order.symbol)
        return batch.view(order)

    def _owned_open(self, batch: Batch, user_id: str, order_id: str) -> Order:
        order = self.book.get(order_id)
        if order is not None and order.user_id == user_id:
            return order
        # Another user's order looks exactly like no order at all.
        status = batch.load.order_status(user_id, order_id)
        if status is None:
            raise OrderNotFoundError
        raise OrderNotOpenError(f"The order is {status}.")

    # --- taking a command back, and rebuilding -------------------------------------------------
    def take_back(self, batch: Batch, undo: CommandUndo, *, keep_audit: bool) -> None:
        """Undo what a failed command changed in memory (`rampart.trading.undo`). Runs only when
        a command failed, so it favours being obviously right over being fast: the maps and
        books of the symbols the command touched are re-derived from the open orders."""
        book = self.book
        touched = undo.restore()
        for position in undo.positions():
            book.index_short(position)
        for order, _, had in undo.orders.values():
            if not had:
                batch.orders.pop(order.id, None)
            batch.views.pop(order.id, None)
        created = {o.id for o in undo.created}
        for order in undo.created:
            batch.orders.pop(order.id, None)
            batch.views.pop(order.id, None)
            if order.client_order_id is not None:
                key = (order.user_id, order.client_order_id)
                if batch.client_ids.get(key) is order:
                    del batch.client_ids[key]
        for order in touched:
            open_now = order.id not in created and order.is_open
            if open_now and order.id not in book:
                book.add(order)
            elif not open_now and order.id in book:
                book.remove(order)
            stops = book.stops.setdefault(order.symbol, {})
            if open_now and order.is_stop and not order.triggered:
                stops[order.id] = order
            else:
                stops.pop(order.id, None)
        for user_id, symbol in {(o.user_id, o.symbol) for o in touched}:
            book.recount_pending_sell(user_id, symbol)
        for symbol in {o.symbol for o in touched} | set(undo.last_prices):
            last = undo.last_prices.get(symbol, self.venue.book(symbol).last_price)
            resting = [
                Execution.venue_order(o)
                for o in book.orders()
                if o.symbol == symbol
                and o.working_price is not None
                and not (o.is_stop and not o.triggered)
            ]
            self.venue.reset(symbol, resting, last)
        fills, outbox, events, executions, entries, audit, audit_events, _, _ = undo.lengths
        del batch.fills[fills:]
        del batch.outbox[outbox:]
        del batch.events[events:]
        del batch.executions[executions:]
        del batch.ledger.entries[entries:]
        if not keep_audit:
            del batch.audit[audit:]
            del batch.audit_events[audit_events:]

    def rebuild(
        self,
        open_orders: list[Order],
        shorts: list[tuple[str, str]],
        priority: int,
        last_prices: dict[str, Decimal],
    ) -> None:
        """Rebuild the books from the open orders (oldest first) and the short positions."""
        book = self.book
        self.venue.clear()
        book.clear()
        for user_id, symbol in shorts:
            book.shorts.setdefault(symbol, set()).add(user_id)
        resting: list[VenueOrder] = []
        for order in open_orders:
            book.add(order)
            if order.side is OrderSide.SELL:
                book.add_pending_sell(order, order.remaining)
            if order.is_stop and not order.triggered:
                book.stops.setdefault(order.symbol, {})[order.id] = order
            elif order.working_price is not None:
                resting.append(Execution.venue_order(order))
        self.venue.restore(resting)
        self.execution.priority = priority
        for symbol, price in last_prices.items():
            self.venue.book(symbol).last_price = price
        self.market.refresh()

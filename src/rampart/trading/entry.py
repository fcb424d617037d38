"""The checks every new and modified order passes before the venue, in one place.

In this order, each rule checked here once: the order's shape against its instrument
(`trading.domain.check_shape`: quantity, tick, lot, halted status, short-sale eligibility), the
instrument's restricted status (`check_restricted`), then what the account holds: shares for a
long sale, buying power for what the order reserves (the same Regulation T reservation it is
then given). The registered pre-trade checks follow (`PreTradeCheck`, the risk pipeline), given
a typed `PreTradeContext` (`rampart.risk.ports`) built from the same figures.
"""

from __future__ import annotations

from decimal import Decimal

from rampart.kernel.money import ZERO
from rampart.trading.batch import Batch
from rampart.trading.domain import Order, OrderSide, Reason, check_restricted, check_shape
from rampart.trading.execution import Execution
from rampart.trading.open_orders import OpenOrders
from rampart.trading.ports import PreTradeCheck, PreTradeContext
from rampart.trading.publish import MarketPublisher
from rampart.venue.domain import Instrument, MatchingVenue, VenueOrder


class EntryChecks:
    def __init__(
        self,
        venue: MatchingVenue,
        book: OpenOrders,
        execution: Execution,
        market: MarketPublisher,
        pre_trade: list[PreTradeCheck],
    ) -> None:
        self.venue = venue
        self.book = book
        self.execution = execution
        self.market = market
        #: Pre-trade checks after the entry checks (the risk engine appends its own).
        self.pre_trade = pre_trade

    def check(
        self,
        batch: Batch,
        order: Order,
        instrument: Instrument,
        action: str,
        quantity: Decimal,
        *,
        actor: str,
        permissions: frozenset[str],
        credential_id: str | None,
        replaced: Order | None = None,
    ) -> tuple[str | None, Decimal]:
        """The entry checks, then the registered pre-trade checks: (reason or None, reservation).

        `quantity` is what the order would then have open (its remaining quantity); `replaced`
        is the open order a modification replaces."""
        reason: str | None = check_shape(order, instrument)
        if reason is not None:
            return reason, ZERO
        run = self.execution
        position = run.position(batch, order.user_id, order.symbol)
        reason = check_restricted(order, instrument, position.quantity, quantity)
        if reason is not None:
            return reason, ZERO
        account = run.account(batch, order.user_id)
        current = self.book.get(order.id)
        held = current.reserved if current is not None else ZERO
        reservation = ZERO
        if order.side is OrderSide.SELL:
            pending = self.book.pending_sell.get((order.user_id, order.symbol), ZERO)
            if current is not None:
                pending -= current.remaining
            if quantity > position.quantity - pending:
                return Reason.INSUFFICIENT_POSITION, ZERO
        else:
            per_unit = order.limit_price if order.limit_price is not None else order.stop_price
            if per_unit is not None:
                cost = per_unit * quantity
            else:
                probe = VenueOrder(
                    order.id,
                    order.user_id,
                    order.symbol,
                    order.side.book_side,
                    quantity,
                    None,
                    order.time_in_force,
                    0,
                )
                fillable, cost = self.venue.executable(probe)
                if fillable <= 0:
                    return Reason.NO_LIQUIDITY, ZERO
            reservation = run.reservation(order, position, quantity, cost)
            # An order that needs no more than it holds passes even in a margin deficit (a
            # buy that covers a short, paid from the short's collateral).
            if reservation > held and reservation - held > account.buying_power:
                return Reason.INSUFFICIENT_BUYING_POWER, ZERO
        if self.pre_trade:
            context = PreTradeContext(
                action=action,
                instrument=instrument,
                cash_balance=account.balance,
                cash_reserved=account.reserved,
                buying_power=account.buying_power,
                position_quantity=position.quantity,
                open_orders=self.book.count.get((order.user_id, order.symbol), 0)
                - (1 if current is not None else 0),
                last_price=self.venue.book(order.symbol).last_price or instrument.reference_price,
                reservation=reservation,
                actor=actor,
                permissions=permissions,
                credential_id=credential_id,
                book=self.market.snapshot(order.symbol),
                replaced_quantity=replaced.remaining if replaced is not None else None,
                replaced_price=(
                    None
                    if replaced is None
                    else replaced.limit_price
                    if replaced.limit_price is not None
                    else replaced.stop_price
                ),
            )
            for check in self.pre_trade:
                verdict = check.check(order, context)
                if verdict is not None:
                    return str(verdict)[:40], ZERO
        return None, reservation

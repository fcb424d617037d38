"""What a batch of commands will touch, worked out before it runs, so that the store loads it
in a few statements instead of a round trip per command."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from rampart.kernel.money import ZERO
from rampart.trading.commands import Cancel, CancelOpen, Command, Modify, Place
from rampart.trading.open_orders import OpenOrders
from rampart.venue.domain import MatchingVenue, Side


@dataclass
class BatchNeeds:
    #: The accounts whose commands the batch runs (the pre-trade checks' `before_batch`).
    placers: set[str] = field(default_factory=set)
    #: Every account the batch may touch: the placers and the makers their orders would meet.
    users: set[str] = field(default_factory=set)
    symbols: set[str] = field(default_factory=set)
    positions: set[tuple[str, str]] = field(default_factory=set)
    client_ids: set[tuple[str, str]] = field(default_factory=set)


def needs_of(commands: list[Command], book: OpenOrders, venue: MatchingVenue) -> BatchNeeds:
    needs = BatchNeeds()
    users, symbols, positions = needs.users, needs.symbols, needs.positions
    #: Per (symbol, side): the batch's takers' quantity in all and their widest limit.
    takers: dict[tuple[str, Side], tuple[Decimal, Decimal | None]] = {}
    for command in commands:
        if isinstance(command, Place):
            ticket = command.ticket
            users.add(command.user_id)
            symbols.add(ticket.symbol)
            positions.add((command.user_id, ticket.symbol))
            if ticket.client_order_id is not None:
                needs.client_ids.add((command.user_id, ticket.client_order_id))
            if ticket.stop_price is None:
                side = ticket.side.book_side
                total, widest = takers.get((ticket.symbol, side), (ZERO, ticket.limit_price))
                takers[(ticket.symbol, side)] = (
                    total + ticket.quantity,
                    _wider(side, widest, ticket.limit_price),
                )
        elif isinstance(command, CancelOpen):
            for matching in book.matching(command.account_id, command.symbol):
                users.add(matching.user_id)
                symbols.add(matching.symbol)
        elif isinstance(command, Modify | Cancel):
            order = book.get(command.order_id)
            if order is not None:
                users.add(order.user_id)
                symbols.add(order.symbol)
    # The makers the batch's orders would trade with: their accounts and positions come in the
    # same two statements, not a round trip per new counterparty. Walked for all the batch's
    # takers on a side at once (each takes what the one before left).
    needs.placers = set(users)
    for (symbol, side), (quantity, limit) in takers.items():
        for maker in venue.counterparties(symbol, side, quantity, limit, needs.placers):
            users.add(maker)
            positions.add((maker, symbol))
    return needs


def _wider(side: Side, a: Decimal | None, b: Decimal | None) -> Decimal | None:
    """The limit that reaches further into the book (None, a market order, reaches all of it)."""
    if a is None or b is None:
        return None
    return max(a, b) if side is Side.BUY else min(a, b)

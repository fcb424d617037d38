"""The market simulator drives demo agents through the real order engine: a two-sided market
that trades, with the ledger, positions and reservations exact afterwards."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from rampart.bootstrap import Container
from rampart.simulator.agents import SimulatorAgents
from rampart.simulator.service import MarketSimulator
from rampart.trading.db import FillRow, OrderRow
from rampart.trading.domain import OPEN_STATUSES
from tests.trading.support import assert_invariants


def test_simulator_makes_a_two_sided_market_that_trades_and_keeps_the_books_exact(
    client: TestClient, container: Container
) -> None:
    simulator = MarketSimulator(
        container.orders,
        container.ledger,
        container.uow,
        container.settings.trading,
        SimulatorAgents(container),
        seed=11,
    )
    simulator.prepare()
    for _ in range(120):
        simulator.step()

    symbols = [i.symbol for i in container.orders.instruments()]
    assert {"ACME", "GLOBX", "INTK"} <= set(symbols)
    two_sided = [s for s in symbols if (b := container.orders.book(s)).bids and b.asks]
    assert two_sided, "no symbol has both a bid and an ask"
    for symbol in two_sided:
        book = container.orders.book(symbol)
        assert book.bids[0].price < book.asks[0].price  # a crossed book would have matched
    with container.db.read() as session:
        fills = session.scalar(select(func.count()).select_from(FillRow))
    assert (fills or 0) > 0, "nothing traded"
    assert_invariants(container)

    # Stopping leaves no agent order resting and no reservation behind.
    simulator.cancel_open_orders()
    with container.db.read() as session:
        resting = session.scalar(
            select(func.count())
            .select_from(OrderRow)
            .where(
                OrderRow.user_id.in_(simulator.agent_ids()),
                OrderRow.status.in_([s.value for s in OPEN_STATUSES]),
            )
        )
    assert resting == 0
    for agent in simulator.agent_ids():
        # All that is still held is the collateral of the agents' short positions (Reg T).
        figures = container.orders.account(agent)
        assert figures["reserved"] == figures["short_collateral"]
    assert_invariants(container)

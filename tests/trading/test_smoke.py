from __future__ import annotations

from decimal import Decimal

from rampart.bootstrap import Container
from tests.trading.support import assert_invariants, cash, fund, locate, place, position


def test_two_users_trade(engine: Container) -> None:
    fund(engine, "alice", "10000")
    fund(engine, "bob", "10000")
    locate(engine, "alice")
    ask = place(engine, "alice", "sell_short", "10", "101.00")
    assert ask["status"] == "accepted"
    bid = place(engine, "bob", "buy", "4", "102.00")
    assert bid["status"] == "filled"
    assert bid["average_price"] == "101"
    assert position(engine, "bob") == 4
    assert position(engine, "alice") == -4
    assert cash(engine, "bob") == (Decimal("9596.00"), Decimal(0))
    assert_invariants(engine)

"""The risk gate decides on the account as it is now: every change the engine acknowledged (a
fill, a cancel, a modify, an expiry) is in the view the next order is checked against, in both
directions (what was freed is free again; what was taken stays taken)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

from rampart.bootstrap import Container
from rampart.trading.engine import Cancel, ExpireDay, Modify
from tests.trading.support import assert_invariants, fund, locate, place, set_limits


def _hold(engine: Container, user: str, quantity: str) -> None:
    """`user` buys `quantity` ACME at 100 from a short seller."""
    fund(engine, "maker", "1000000")
    locate(engine, "maker")
    place(engine, "maker", "sell_short", quantity, "100.00")
    assert place(engine, user, "buy", quantity, "100.00")["status"] == "filled"


def test_cancel_then_cross_below_the_cancelled_price_at_once(engine: Container) -> None:
    fund(engine, "alice", "100000")
    _hold(engine, "alice", "10")
    for i in range(5):
        resting = place(engine, "alice", "buy", "5", f"99.{i}0")
        assert resting["status"] == "accepted"
        cancelled = engine.orders.engine.call(Cancel("alice", "user:alice", resting["id"]))
        assert cancelled["status"] == "cancelled"
        # Nothing of alice's rests at 99 any more: a sale below it crosses nobody of hers.
        sale = place(engine, "alice", "sell", "1", f"98.{i}0")
        assert sale["status"] == "accepted", sale["reason"]
        engine.orders.engine.call(Cancel("alice", "user:alice", sale["id"]))
    assert_invariants(engine)


def test_buy_then_sell_what_was_bought_at_once(engine: Container) -> None:
    fund(engine, "alice", "100000")
    fund(engine, "maker", "1000000")
    locate(engine, "maker")
    # Alice's resting buy is filled by another's sale; she sells what she now holds at once.
    assert place(engine, "alice", "buy", "10", "100.00")["status"] == "accepted"
    place(engine, "maker", "sell_short", "10", "100.00")
    sale = place(engine, "alice", "sell", "10", "100.50")
    assert sale["status"] == "accepted", sale["reason"]
    # A sale cancelled, then the whole holding sold again: the cancelled sale holds nothing.
    engine.orders.engine.call(Cancel("alice", "user:alice", sale["id"]))
    again = place(engine, "alice", "sell", "10", "100.60")
    assert again["status"] == "accepted", again["reason"]
    assert_invariants(engine)


def test_a_modify_frees_what_it_no_longer_asks_for(engine: Container) -> None:
    fund(engine, "alice", "100000")
    _hold(engine, "alice", "10")
    sale = place(engine, "alice", "sell", "10", "101.00")
    smaller = engine.orders.engine.call(Modify("alice", "user:alice", sale["id"], quantity=D(4)))
    assert smaller["quantity"] == "4"
    more = place(engine, "alice", "sell", "6", "101.50")
    assert more["status"] == "accepted", more["reason"]


def test_an_expired_order_no_longer_counts(engine: Container) -> None:
    fund(engine, "alice", "100000")
    _hold(engine, "alice", "10")
    assert place(engine, "alice", "buy", "5", "99.00")["status"] == "accepted"
    assert engine.orders.engine.call(ExpireDay("system")) >= 1
    sale = place(engine, "alice", "sell", "1", "98.00")
    assert sale["status"] == "accepted", sale["reason"]


def test_back_to_back_orders_past_a_limit_are_still_refused(engine: Container) -> None:
    fund(engine, "alice", "100000")
    set_limits(engine, "alice", max_gross_exposure="1500")
    assert place(engine, "alice", "buy", "10", "90.00")["status"] == "accepted"
    refused = place(engine, "alice", "buy", "7", "91.00")
    assert refused["reason"] == "max-gross-exposure"


def test_a_fill_counts_at_once_toward_exposure_and_position(engine: Container) -> None:
    fund(engine, "alice", "100000")
    set_limits(engine, "alice", max_position_quantity="15")
    _hold(engine, "alice", "10")
    engine.clock.advance(timedelta(seconds=2))  # type: ignore[attr-defined]
    refused = place(engine, "alice", "buy", "6", "99.00")
    assert refused["reason"] == "max-position"
    assert place(engine, "alice", "buy", "5", "99.00")["status"] == "accepted"

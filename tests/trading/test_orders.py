"""Orders against the book through the engine: types, time in force, modify, cancel, rejections."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from sqlalchemy import select

from rampart.audit.db import AuditEntryRow as Entry
from rampart.bootstrap import Container
from rampart.trading.engine import (
    Cancel,
    CancelAll,
    ClientOrderIdReusedError,
    Modify,
    ModifyRejectedError,
    OrderNotFoundError,
    OrderNotOpenError,
)
from rampart.venue.domain import InstrumentStatus
from tests.trading.support import assert_invariants, cash, fund, locate, place, position


def call(c: Container, command):  # type: ignore[no-untyped-def]
    return c.orders.engine.call(command)


@pytest.fixture
def market(engine: Container) -> Container:
    for user in ("alice", "bob", "carol"):
        fund(engine, user, "100000")
        locate(engine, user)
    return engine


def test_limit_buy_reserves_and_cancel_releases(market: Container) -> None:
    order = place(market, "alice", "buy", "10", "99.50")
    assert order["status"] == "accepted"
    assert cash(market, "alice") == (D("100000.00"), D("995.00"))
    cancelled = call(market, Cancel("alice", "user:alice", order["id"]))
    assert cancelled["status"] == "cancelled"
    assert cancelled["reason"] == "user-cancelled"
    assert cash(market, "alice") == (D("100000.00"), D(0))
    assert_invariants(market)


def test_fill_at_a_better_price_releases_the_difference(market: Container) -> None:
    place(market, "bob", "sell_short", "10", "98.00")
    order = place(market, "alice", "buy", "10", "99.00")
    assert order["status"] == "filled"
    assert order["average_price"] == "98"
    assert cash(market, "alice") == (D("99020.00"), D(0))
    # The short holds Regulation T collateral: its 980 of proceeds plus 50 % (marked at 98).
    assert cash(market, "bob") == (D("100980.00"), D("1470.00"))
    assert position(market, "alice") == 10
    assert position(market, "bob") == -10
    assert_invariants(market)


def test_partial_fills_then_fill(market: Container) -> None:
    bid = place(market, "alice", "buy", "10", "100.00")
    place(market, "bob", "sell_short", "4", "100.00")
    mid = market.orders.get("alice", bid["id"])
    assert mid["status"] == "partially_filled"
    assert mid["filled_quantity"] == "4"
    place(market, "carol", "sell_short", "6", "99.00")
    done = market.orders.get("alice", bid["id"])
    assert done["status"] == "filled"
    # The maker's price: both trades at 100.
    assert done["average_price"] == "100"
    assert_invariants(market)


def test_market_order_walks_the_book_and_ioc_fok(market: Container) -> None:
    place(market, "bob", "sell_short", "5", "101.00")
    place(market, "bob", "sell_short", "5", "102.00")
    fok = place(market, "alice", "buy", "20", "105.00", tif="fok")
    assert fok["status"] == "cancelled"
    assert fok["reason"] == "fok-not-fillable"
    mkt = place(market, "alice", "buy", "7")
    assert mkt["status"] == "filled"
    assert mkt["filled_quantity"] == "7"
    assert cash(market, "alice")[0] == D("100000") - D("505") - D("204")
    ioc = place(market, "alice", "buy", "10", "102.00", tif="ioc")
    assert ioc["status"] == "cancelled"
    assert ioc["filled_quantity"] == "3"
    assert ioc["reason"] == "ioc-remainder"
    empty = place(market, "alice", "buy", "1")
    assert empty["status"] == "rejected"
    assert empty["reason"] == "no-liquidity"
    assert_invariants(market)


def test_stop_and_stop_limit_trigger_on_trades(market: Container) -> None:
    stop = place(market, "alice", "buy", "2", None, type="stop", stop="101.00", tif="gtc")
    stop_limit = place(market, "carol", "buy", "2", "101.50", type="stop_limit", stop="101.00")
    assert stop["status"] == "accepted"
    assert stop_limit["status"] == "accepted"
    assert cash(market, "alice")[1] == D("202.00")
    place(market, "bob", "sell_short", "10", "101.00")
    # Not triggered yet: no trade has happened.
    assert market.orders.get("alice", stop["id"])["status"] == "accepted"
    place(market, "carol", "buy", "1", "101.00")  # trades at 101: both stops trigger
    assert market.orders.get("alice", stop["id"])["status"] == "filled"
    assert market.orders.get("carol", stop_limit["id"])["status"] == "filled"
    assert_invariants(market)


def test_rejections_carry_stable_reasons(market: Container) -> None:
    assert place(market, "alice", "buy", "1", "100.001")["reason"] == "price-not-on-tick"
    assert place(market, "alice", "buy", "0.5", "100")["reason"] == "quantity-not-on-lot"
    assert place(market, "alice", "buy", "2000", "100")["reason"] == "insufficient-buying-power"
    assert place(market, "alice", "sell", "1", "100")["reason"] == "insufficient-position"
    assert place(market, "alice", "sell_short", "1", "5", symbol="HTB")["reason"] == (
        "short-sale-not-allowed"
    )
    assert place(market, "alice", "buy", "1", "1", symbol="NOPE")["reason"] == "unknown-instrument"
    with market.uow() as uow:
        market.instruments.set_status(uow, "ACME", InstrumentStatus.HALTED)
        uow.commit()
    assert place(market, "alice", "buy", "1", "100")["reason"] == "instrument-halted"
    assert cash(market, "alice") == (D("100000.00"), D(0))
    assert_invariants(market)


def test_every_transition_is_audited(market: Container) -> None:
    order = place(market, "alice", "buy", "1", "90.00")
    call(market, Cancel("alice", "user:alice", order["id"]))
    with market.db.read() as session:
        actions = [
            (e.action, e.actor)
            for e in session.scalars(select(Entry).where(Entry.subject == f"order:{order['id']}"))
        ]
    assert actions == [("order.accepted", "user:alice"), ("order.cancelled", "user:alice")]


def test_client_order_id_is_idempotent(market: Container) -> None:
    first = place(market, "alice", "buy", "3", "90.00", client_order_id="abc-1")
    again = place(market, "alice", "buy", "3", "90.00", client_order_id="abc-1")
    assert again["id"] == first["id"]
    assert cash(market, "alice")[1] == D("270.00")  # reserved once
    with pytest.raises(ClientOrderIdReusedError):
        place(market, "alice", "buy", "4", "90.00", client_order_id="abc-1")
    # Another account may use the same client id.
    other = place(market, "bob", "buy", "3", "90.00", client_order_id="abc-1")
    assert other["id"] != first["id"]
    assert_invariants(market)


def test_modify_priority_rules(market: Container) -> None:
    first = place(market, "alice", "buy", "10", "100.00")
    second = place(market, "bob", "buy", "10", "100.00")
    # A smaller quantity keeps alice's place in the queue.
    call(market, Modify("alice", "user:alice", first["id"], quantity=D(5)))
    assert cash(market, "alice")[1] == D("500.00")
    place(market, "carol", "sell_short", "5", "100.00")
    assert market.orders.get("alice", first["id"])["status"] == "filled"
    # A larger quantity loses it: bob's order is now ahead of alice's new one.
    third = place(market, "alice", "buy", "5", "100.00")
    call(market, Modify("alice", "user:alice", third["id"], quantity=D(6)))
    place(market, "carol", "sell_short", "10", "100.00")
    assert market.orders.get("bob", second["id"])["status"] == "filled"
    assert market.orders.get("alice", third["id"])["status"] == "accepted"
    # A price change that crosses trades at once.
    place(market, "carol", "sell_short", "6", "100.50")
    moved = call(market, Modify("alice", "user:alice", third["id"], limit_price=D("100.50")))
    assert moved["status"] == "filled"
    assert_invariants(market)


def test_modify_refused_leaves_the_order_unchanged(market: Container) -> None:
    order = place(market, "alice", "buy", "10", "100.00")
    with pytest.raises(ModifyRejectedError) as refused:
        call(market, Modify("alice", "user:alice", order["id"], quantity=D(5000)))
    assert refused.value.reason == "insufficient-buying-power"
    assert market.orders.get("alice", order["id"])["quantity"] == "10"
    with pytest.raises(ModifyRejectedError):
        call(market, Modify("alice", "user:alice", order["id"], limit_price=D("100.001")))
    assert cash(market, "alice")[1] == D("1000.00")
    assert_invariants(market)


def test_cancel_and_modify_races_with_fills(market: Container) -> None:
    order = place(market, "alice", "buy", "5", "100.00")
    place(market, "bob", "sell_short", "5", "100.00")
    with pytest.raises(OrderNotOpenError):
        call(market, Cancel("alice", "user:alice", order["id"]))
    with pytest.raises(OrderNotOpenError):
        call(market, Modify("alice", "user:alice", order["id"], quantity=D(9)))
    # Cancel and fill submitted together: exactly one wins, the books stay right. (A second
    # later: the same order again at once would be refused as a duplicate.)
    market.clock.advance(timedelta(seconds=2))  # type: ignore[attr-defined]
    resting = place(market, "alice", "buy", "5", "100.00")
    engine = market.orders.engine
    from rampart.trading.domain import OrderSide, OrderTicket, OrderType
    from rampart.trading.engine import Place

    cancel = engine.submit(Cancel("alice", "user:alice", resting["id"]))
    sell = engine.submit(
        Place(
            "bob",
            "user:bob",
            OrderTicket("ACME", OrderSide.SELL_SHORT, OrderType.LIMIT, D(5), limit_price=D(100)),
        )
    )
    assert cancel.result(10)["status"] == "cancelled"
    assert sell.result(10).order["status"] == "accepted"
    assert_invariants(market)


def test_another_users_order_is_not_found(market: Container) -> None:
    order = place(market, "alice", "buy", "1", "90.00")
    with pytest.raises(OrderNotFoundError):
        call(market, Cancel("bob", "user:bob", order["id"]))
    with pytest.raises(OrderNotFoundError):
        market.orders.get("bob", order["id"])
    with pytest.raises(OrderNotFoundError):
        call(market, Modify("bob", "user:bob", order["id"], quantity=D(2)))
    assert market.orders.get("alice", order["id"])["status"] == "accepted"


def test_cancel_all_and_end_of_day(market: Container) -> None:
    place(market, "alice", "buy", "1", "90.00")
    place(market, "alice", "buy", "1", "91.00", tif="gtc")
    place(market, "bob", "buy", "1", "92.00")
    cancelled = call(market, CancelAll("alice", "user:alice"))
    assert len(cancelled) == 2
    assert {o["status"] for o in cancelled} == {"cancelled"}
    market.clock.advance(timedelta(seconds=2))  # type: ignore[attr-defined]
    place(market, "alice", "buy", "1", "91.00", tif="gtc")
    assert market.orders.expire_day_orders() == 1  # bob's day order; alice's GTC stays
    assert market.orders.list_orders("bob", status="open").items == []
    assert len(market.orders.list_orders("alice", status="open").items) == 1
    assert_invariants(market)


def test_selling_a_long_position_realises_pnl(market: Container) -> None:
    place(market, "bob", "sell_short", "10", "100.00")
    place(market, "alice", "buy", "10", "100.00")
    place(market, "carol", "buy", "4", "110.00")
    assert place(market, "alice", "sell", "4", "110.00")["status"] == "filled"
    positions = market.orders.positions("alice")
    assert positions[0]["quantity"] == "6"
    assert D(positions[0]["realised_pnl"]) == D("40")
    assert D(positions[0]["average_cost"]) == D("100")
    # Selling more than is held (incl. what open sells hold) is refused.
    place(market, "alice", "sell", "6", "109.00")
    assert place(market, "alice", "sell", "1", "109.00")["reason"] == "insufficient-position"
    assert_invariants(market)


def test_restricted_instrument_accepts_only_reducing_orders(market: Container) -> None:
    place(market, "bob", "sell_short", "10", "100.00")
    place(market, "alice", "buy", "10", "100.00")
    # The built-in rule alone: the risk engine's own policy may be stricter (and is tested there).
    market.pre_trade_checks.clear()
    with market.uow() as uow:
        market.instruments.set_status(uow, "ACME", InstrumentStatus.RESTRICTED)
        uow.commit()
    assert place(market, "alice", "buy", "1", "100.00")["reason"] == "instrument-restricted"
    reduced = place(market, "alice", "sell", "5", "100.00")
    assert reduced["status"] == "accepted", reduced["reason"]

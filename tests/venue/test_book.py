"""The book alone: price-time priority, partial fills, IOC/FOK/market, self-trade prevention."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rampart.venue.domain import (
    Instrument,
    InstrumentStatus,
    MatchingVenue,
    OrderBook,
    RestingOrder,
    Side,
    Taker,
    TimeInForce,
    VenueOrder,
)


def rest(
    book: OrderBook, oid: str, side: Side, price: str, qty: str, prio: int, owner: str = "m"
) -> None:
    book.add(RestingOrder(oid, owner, side, D(price), D(qty), prio))


def order(
    oid: str,
    side: Side,
    qty: str,
    price: str | None,
    tif: TimeInForce = TimeInForce.DAY,
    owner: str = "t",
    prio: int = 100,
) -> VenueOrder:
    return VenueOrder(oid, owner, "X", side, D(qty), D(price) if price else None, tif, prio)


def test_price_then_time_priority() -> None:
    venue = MatchingVenue()
    book = venue.book("X")
    rest(book, "late", Side.SELL, "10.00", "5", 2)
    rest(book, "early", Side.SELL, "10.00", "5", 1)
    rest(book, "better", Side.SELL, "9.99", "5", 3)
    report = venue.submit(order("t", Side.BUY, "12", "10.00"))
    assert [(m.maker_id, m.price, m.quantity) for m in report.matches] == [
        ("better", D("9.99"), D(5)),
        ("early", D("10.00"), D(5)),
        ("late", D("10.00"), D(2)),
    ]
    assert book.get("late").remaining == 3
    assert report.resting == 0


def test_partial_fill_rests_the_remainder_at_its_limit() -> None:
    venue = MatchingVenue()
    rest(venue.book("X"), "a", Side.SELL, "10", "3", 1)
    report = venue.submit(order("t", Side.BUY, "5", "10"))
    assert report.filled == 3
    assert report.resting == 2
    assert venue.snapshot("X").best_bid == D(10)


def test_limit_that_does_not_cross_rests() -> None:
    venue = MatchingVenue()
    rest(venue.book("X"), "a", Side.SELL, "10.01", "3", 1)
    report = venue.submit(order("t", Side.BUY, "5", "10.00"))
    assert report.matches == []
    assert report.resting == 5


def test_ioc_cancels_the_remainder_and_fok_all_or_nothing() -> None:
    venue = MatchingVenue()
    rest(venue.book("X"), "a", Side.SELL, "10", "3", 1)
    fok = venue.submit(order("f", Side.BUY, "5", "10", TimeInForce.FOK))
    assert fok.matches == []
    assert fok.cancelled == 5
    assert fok.cancel_reason == "fok-not-fillable"
    assert venue.book("X").get("a").remaining == 3  # untouched
    ioc = venue.submit(order("i", Side.BUY, "5", "10", TimeInForce.IOC))
    assert ioc.filled == 3
    assert ioc.cancelled == 2
    assert ioc.resting == 0
    assert "i" not in venue.book("X")


def test_market_order_never_rests() -> None:
    venue = MatchingVenue()
    rest(venue.book("X"), "a", Side.BUY, "9", "1", 1)
    report = venue.submit(order("m", Side.SELL, "4", None))
    assert report.filled == 1
    assert report.cancelled == 3
    assert report.cancel_reason == "no-liquidity"


def test_self_trade_prevention_cancels_the_resting_order() -> None:
    venue = MatchingVenue()
    rest(venue.book("X"), "mine", Side.SELL, "10", "5", 1, owner="t")
    rest(venue.book("X"), "theirs", Side.SELL, "10", "5", 2, owner="other")
    report = venue.submit(order("t1", Side.BUY, "5", "10", owner="t"))
    assert [o.order_id for o in report.self_trade_cancelled] == ["mine"]
    assert [m.maker_id for m in report.matches] == ["theirs"]
    # Own orders are not liquidity for the owner.
    assert venue.book("X").executable(Taker("p", "t", Side.BUY, D(5), None)) == (D(0), D(0))


def test_reduce_keeps_priority_and_restore_rebuilds_time_order() -> None:
    venue = MatchingVenue()
    rest(venue.book("X"), "first", Side.BUY, "10", "5", 1)
    rest(venue.book("X"), "second", Side.BUY, "10", "5", 2)
    venue.reduce("X", "first", D(2))
    report = venue.submit(order("s", Side.SELL, "3", "10"))
    assert [(m.maker_id, m.quantity) for m in report.matches] == [("first", 2), ("second", 1)]
    rebuilt = MatchingVenue()
    rebuilt.restore(
        [
            order("b", Side.BUY, "1", "10", owner="m", prio=9),
            order("a", Side.BUY, "1", "10", owner="m", prio=3),
        ]
    )
    report = rebuilt.submit(order("s", Side.SELL, "1", "10"))
    assert report.matches[0].maker_id == "a"


def test_instrument_precision_keeps_cash_exact() -> None:
    with pytest.raises(ValueError, match="8 decimal places"):
        Instrument("X", "x", D("0.00001"), D("0.0001"), InstrumentStatus.ACTIVE, D(1))
    inst = Instrument("X", "x", D("0.01"), D("0.001"), InstrumentStatus.ACTIVE, D(1))
    assert inst.on_tick(D("1.23"))
    assert not inst.on_tick(D("1.234"))
    assert inst.on_lot(D("0.002"))
    assert not inst.on_lot(D("0.0005"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(min_value=1, max_value=20),
            st.one_of(st.none(), st.integers(min_value=95, max_value=105)),
            st.sampled_from(list(TimeInForce)),
            st.sampled_from(["a", "b", "c"]),
        ),
        max_size=60,
    )
)
def test_book_conserves_quantity_and_never_crosses(ops) -> None:  # type: ignore[no-untyped-def]
    venue = MatchingVenue()
    book = venue.book("X")
    for i, (side, qty, price, tif, owner) in enumerate(ops):
        vo = VenueOrder(
            f"o{i}", owner, "X", side, D(qty), None if price is None else D(price), tif, i
        )
        before = {o.order_id: o.remaining for o in book.orders()}
        report = venue.submit(vo)
        # Quantity is conserved: filled + resting + cancelled = ordered.
        assert report.filled + report.resting + report.cancelled == D(qty)
        for m in report.matches:
            assert m.maker_owner != owner
            assert before[m.maker_id] >= m.quantity
            if price is not None:
                assert m.price <= price if side is Side.BUY else m.price >= price
        bid, ask = book.best(Side.BUY), book.best(Side.SELL)
        assert bid is None or ask is None or bid < ask


def test_counterparties_are_the_owners_the_takers_would_meet() -> None:
    book = OrderBook("X")
    rest(book, "a1", Side.SELL, "10.00", "5", 1, owner="alice")
    rest(book, "b1", Side.SELL, "10.00", "5", 2, owner="bob")
    rest(book, "c1", Side.SELL, "10.01", "5", 3, owner="carol")
    rest(book, "d1", Side.SELL, "10.05", "5", 4, owner="dave")
    # Buyers for 8 in all at 10.01 reach alice and bob; 12 reach carol too; never dave.
    assert book.counterparties(Side.BUY, D(8), D("10.01")) == {"alice", "bob"}
    assert book.counterparties(Side.BUY, D(12), D("10.01")) == {"alice", "bob", "carol"}
    assert book.counterparties(Side.BUY, D(100), D("10.01")) == {"alice", "bob", "carol"}
    # A market order reaches as far as its quantity; a takers' own orders are passed over.
    assert book.counterparties(Side.BUY, D(16), None) == {"alice", "bob", "carol", "dave"}
    assert book.counterparties(Side.BUY, D(5), None, exclude={"alice"}) == {"bob"}
    # Nothing crosses; the walk changes nothing.
    assert book.counterparties(Side.BUY, D(5), D("9.99")) == set()
    assert book.counterparties(Side.SELL, D(5), None) == set()
    assert len(book) == 4


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["submit", "cancel", "reduce"]),
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(min_value=1, max_value=20),
            st.one_of(st.none(), st.integers(min_value=97, max_value=103)),
            st.sampled_from(["a", "b", "c"]),
            st.integers(min_value=0, max_value=59),
        ),
        max_size=60,
    )
)
def test_published_depth_always_equals_what_rests(ops) -> None:  # type: ignore[no-untyped-def]
    # The depth is kept per level as orders rest, fill, shrink and go: it must always be the
    # sum of what actually rests there.
    venue = MatchingVenue()
    book = venue.book("X")
    for i, (op, side, qty, price, owner, pick) in enumerate(ops):
        resting = list(book.orders())
        if op == "submit" or not resting:
            venue.submit(
                VenueOrder(
                    f"o{i}", owner, "X", side, D(qty), None if price is None else D(price),
                    TimeInForce.DAY, i,
                )
            )  # fmt: skip
        else:
            target = resting[pick % len(resting)]
            if op == "cancel":
                venue.cancel("X", target.order_id)
            elif target.remaining > 1:
                venue.reduce("X", target.order_id, target.remaining - 1)
        snapshot = book.snapshot(levels=1000)
        for levels, book_side in ((snapshot.bids, Side.BUY), (snapshot.asks, Side.SELL)):
            expected: dict[D, D] = {}
            for o in book.orders():
                if o.side is book_side:
                    expected[o.price] = expected.get(o.price, D(0)) + o.remaining
            assert {level.price: level.quantity for level in levels} == expected

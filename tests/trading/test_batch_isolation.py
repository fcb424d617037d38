"""One command cannot fail a batch: amounts are bounded before the engine, formatting an accepted
order cannot raise, and an unexpected error fails its own command alone (issue #14, item 1)."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from rampart.bootstrap import Container
from rampart.kernel.errors import RampartError, UnavailableError
from rampart.kernel.ids import new_id
from rampart.trading.db import OrderRow
from rampart.trading.domain import InvalidOrderError, OrderSide, OrderTicket, OrderType
from rampart.trading.engine import Cancel, Modify, OrderEngine, Place
from rampart.venue.domain import TimeInForce
from tests.trading.support import (
    assert_invariants,
    cash,
    fund,
    locate,
    place,
    position,
    set_limits,
)

FORTY_DIGITS = "1234567890123456789012345678901234567890"
TINY = "0." + "0" * 37 + "1"  # 40 characters: the old pattern's limit


def limit_buy(quantity: str, price: str) -> OrderTicket:
    return OrderTicket("ACME", OrderSide.BUY, OrderType.LIMIT, D(quantity), limit_price=D(price))


@pytest.mark.parametrize(
    ("quantity", "price"),
    [
        ("1", FORTY_DIGITS),
        (FORTY_DIGITS, "100"),
        ("1E-40", "100"),
        (TINY, "100"),
        ("1", "100.000000001"),  # a 9th decimal place: NUMERIC(38, 8) would round it away
        ("1", "10000000.01"),  # above the largest price
        ("10000001", "1"),  # above the largest quantity
        ("0", "100"),
        ("1", "-5"),
        ("1", "NaN"),
        ("Infinity", "100"),
    ],
)
def test_an_amount_the_books_cannot_hold_is_refused_before_the_engine(
    quantity: str, price: str
) -> None:
    with pytest.raises(InvalidOrderError) as refused:
        limit_buy(quantity, price)
    assert refused.value.code == "amount-out-of-range"
    with pytest.raises(InvalidOrderError):
        Modify("u", "user:u", "order", quantity=D(quantity), limit_price=D(price))


def test_the_largest_and_finest_amounts_are_accepted() -> None:
    request = limit_buy("9999999.99999999", "10000000")
    assert request.quantity == D("9999999.99999999")
    assert limit_buy("0.00000001", "0.00000001").limit_price == D("0.00000001")
    Modify("u", "user:u", "order", quantity=D("10000000"), stop_price=D("0.00000001"))


def test_an_unrepresentable_amount_over_http_is_a_422_problem_not_a_503(
    trader_client: TestClient, container: Container
) -> None:
    fund(container, "alice", "10000")
    bodies = [
        {"quantity": "1", "limit_price": FORTY_DIGITS},
        {"quantity": FORTY_DIGITS, "limit_price": "100"},
        {"quantity": TINY, "limit_price": "100"},
        {"quantity": "1", "limit_price": "100.000000001"},
        {"quantity": "1", "limit_price": "10000000.01"},
        {"quantity": "0", "limit_price": "100"},
        {"quantity": "1e-40", "limit_price": "100"},
    ]
    for amounts in bodies:
        body = {"symbol": "ACME", "side": "buy", "type": "limit", **amounts}
        refused = trader_client.post("/v1/orders", json=body, headers={"x-test-user": "alice"})
        assert refused.status_code == 422, (amounts, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["type"] == "urn:rampart:problem:validation"
        assert refused.json()["errors"][0]["loc"][-1] in ("quantity", "limit_price")
    ok = trader_client.post(
        "/v1/orders",
        json={"symbol": "ACME", "side": "buy", "quantity": "1", "limit_price": "99.5"},
        headers={"x-test-user": "alice"},
    )
    assert ok.status_code == 201, ok.text
    order = ok.json()["id"]
    patch = trader_client.patch(
        f"/v1/orders/{order}", json={"limit_price": FORTY_DIGITS}, headers={"x-test-user": "alice"}
    )
    assert patch.status_code == 422
    assert patch.json()["type"] == "urn:rampart:problem:validation"


def test_the_bounds_are_declared_in_the_openapi_schema(trader_client: TestClient) -> None:
    schemas = trader_client.get("/openapi.json").json()["components"]["schemas"]
    for model in ("OrderIn", "OrderPatch"):
        quantity = schemas[model]["properties"]["quantity"]
        declared = quantity if "pattern" in quantity else quantity["anyOf"][0]
        assert declared["pattern"] == r"^[0-9]{1,8}(\.[0-9]{1,8})?$"
        assert declared["x-maximum"] == "10000000"
        assert declared["x-decimal-places"] == 8
        assert "at most" in declared["description"]


# --- one poisoned command among good ones ------------------------------------------------------
GOOD = 50


@pytest.fixture
def crowd(engine: Container) -> Container:
    for user in ("maker", "poison", "late"):
        fund(engine, user, "100000")
        locate(engine, user)
    for i in range(GOOD):
        fund(engine, f"good{i}", "1000")
    return engine


def _gather(container: Container, commands: list[tuple[str, OrderTicket]]) -> list[Any]:
    """Submit every command in one event-loop tick: the engine takes them as one batch."""

    async def run() -> list[Any]:
        service = container.orders
        return await asyncio.gather(
            *(service.place(user, f"user:{user}", request) for user, request in commands),
            return_exceptions=True,
        )

    return asyncio.run(run())


def _count_rebuilds(monkeypatch: pytest.MonkeyPatch, engine: OrderEngine) -> list[int]:
    rebuilds: list[int] = []
    original = engine._rebuild

    def counted(batch: Any) -> None:
        rebuilds.append(1)
        original(batch)

    monkeypatch.setattr(engine, "_rebuild", counted)
    return rebuilds


def test_a_command_that_fails_midway_fails_alone_and_the_batch_commits_the_rest(
    crowd: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = crowd.orders.engine
    resting = place(crowd, "maker", "sell_short", "5", "100.00")
    assert resting["status"] == "accepted"
    before = cash(crowd, "poison")
    rebuilds = _count_rebuilds(monkeypatch, engine)

    # The poisoned command trades with the maker; the engine fails after the poisoned side of the
    # trade is fully applied (cash, position, fill, transition), before the maker's side.
    original = engine.core.execution._apply_fill

    def poisoned(batch: Any, order: Any, *args: Any) -> None:
        original(batch, order, *args)
        if order.user_id == "poison":
            raise ArithmeticError("a step the engine did not expect to fail")

    monkeypatch.setattr(engine.core.execution, "_apply_fill", poisoned)
    half = GOOD // 2
    commands = [(f"good{i}", limit_buy("1", "90.00")) for i in range(half)]
    commands.append(("poison", limit_buy("5", "100.00")))
    # After the poisoned command, another account takes the maker's order: it must still be there.
    commands.append(("late", limit_buy("5", "100.00")))
    commands += [(f"good{i}", limit_buy("1", "90.00")) for i in range(half, GOOD)]
    batches = engine.batches
    results = _gather(crowd, commands)

    assert engine.batches == batches + 1, "the commands did not share one batch"
    poisoned_result = results[half]
    assert isinstance(poisoned_result, UnavailableError)
    others = [r for i, r in enumerate(results) if i != half]
    assert all(not isinstance(r, BaseException) for r in others), others
    goods = [r.order for r in others[:half] + others[half + 1 :]]
    assert len(goods) == GOOD
    assert {o["status"] for o in goods} == {"accepted"}
    assert others[half].order["status"] == "filled"
    assert rebuilds == []

    # The poisoned command left nothing: no order, no cash moved, no position.
    with crowd.db.read() as session:
        assert session.scalar(select(func.count()).where(OrderRow.user_id == "poison")) == 0
    assert cash(crowd, "poison") == before
    assert position(crowd, "poison") == 0
    assert position(crowd, "late") == 5
    assert position(crowd, "maker") == -5
    for i in range(GOOD):
        assert cash(crowd, f"good{i}") == (D("1000.00"), D("90.00"))
    assert_invariants(crowd)
    # The engine goes on from its own memory, which still matches the database.
    assert engine._epoch is not None
    after = place(crowd, "poison", "buy", "1", "99.00")
    assert after["status"] == "accepted", after["reason"]
    assert rebuilds == []
    assert_invariants(crowd)


def test_a_refusal_raised_after_changes_undoes_them(
    crowd: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An expected error (a RampartError) raised midway is answered as itself, and what the
    command had changed is undone like for any other failure."""
    engine = crowd.orders.engine
    place(crowd, "maker", "sell_short", "5", "100.00")
    original = engine.core.execution._apply_fill

    class Refused(RampartError):
        code = "test-refused"

    def refusing(batch: Any, order: Any, *args: Any) -> None:
        original(batch, order, *args)
        if order.user_id == "poison":
            raise Refused

    monkeypatch.setattr(engine.core.execution, "_apply_fill", refusing)
    results = _gather(
        crowd,
        [("good0", limit_buy("1", "90.00")), ("poison", limit_buy("5", "100.00"))],
    )
    assert isinstance(results[1], Refused)
    assert results[0].order["status"] == "accepted"
    assert position(crowd, "poison") == 0
    assert crowd.orders.book("ACME").asks[0].quantity == 5
    assert_invariants(crowd)


def test_a_command_whose_statement_fails_in_the_database_fails_alone(
    crowd: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a failed statement aborts the whole transaction: the command's savepoint is
    what lets the rest of the batch commit."""
    engine = crowd.orders.engine
    original = engine.store.transaction

    def broken(uow: Any) -> Any:
        tx = original(uow)
        order_status = tx.order_status

        def failing(user_id: str, order_id: str) -> Any:
            if user_id == "poison":
                tx.statement()
                tx.uow.session.connection().execute(text("SELECT * FROM no_such_table"))
            return order_status(user_id, order_id)

        tx.order_status = failing
        return tx

    monkeypatch.setattr(engine.store, "transaction", broken)
    rebuilds = _count_rebuilds(monkeypatch, engine)

    async def run() -> list[Any]:
        return await asyncio.gather(
            engine.execute(Place("good0", "user:good0", limit_buy("1", "90.00"))),
            engine.execute(Cancel("poison", "user:poison", "no-such-order")),
            engine.execute(Place("good1", "user:good1", limit_buy("1", "90.00"))),
            return_exceptions=True,
        )

    batches = engine.batches
    first, poisoned, last = asyncio.run(run())
    assert engine.batches == batches + 1
    assert isinstance(poisoned, UnavailableError)
    assert first.order["status"] == last.order["status"] == "accepted"
    assert rebuilds == []
    assert_invariants(crowd)
    assert_memory_matches_database(crowd)


def assert_memory_matches_database(container: Container) -> None:
    """The engine's books and maps are what a rebuild from the database would make of them."""
    engine = container.orders.engine
    fresh = OrderEngine(container.uow, container.ledger, engine.hub)
    with container.uow() as uow:
        fresh._rebuild(fresh.store.transaction(uow))
    assert set(engine.core.book.by_id) == set(fresh.core.book.by_id)
    for order_id, order in fresh.core.book.by_id.items():
        mine = engine.core.book.by_id[order_id]
        assert (mine.remaining, mine.reserved, mine.status, mine.triggered, mine.version) == (
            order.remaining,
            order.reserved,
            order.status,
            order.triggered,
            order.version,
        ), order_id
    assert engine.core.book.count == fresh.core.book.count
    assert {u: set(o) for u, o in engine.core.book.by_user.items()} == {
        u: set(o) for u, o in fresh.core.book.by_user.items()
    }
    assert {s: set(o) for s, o in engine.core.book.stops.items() if o} == {
        s: set(o) for s, o in fresh.core.book.stops.items() if o
    }
    assert engine.core.book.pending_sell == fresh.core.book.pending_sell
    # Whose collateral a price move re-marks: every short, and only shorts.
    assert engine.core.book.shorts == fresh.core.book.shorts
    for symbol in set(engine.venue.symbols()) | set(fresh.venue.symbols()):
        ours, theirs = engine.venue.book(symbol), fresh.venue.book(symbol)
        assert ours.snapshot(1000) == theirs.snapshot(1000), symbol
        assert [(o.order_id, o.remaining) for o in ours.orders()] == [
            (o.order_id, o.remaining) for o in theirs.orders()
        ]


BATCH = st.lists(
    st.tuples(
        st.sampled_from(["place", "place", "place", "cancel", "modify"]),
        st.sampled_from("abc"),
        st.sampled_from(["buy", "sell_short"]),
        st.sampled_from(["limit", "limit", "market", "stop", "stop_limit"]),
        st.sampled_from(["day", "gtc", "ioc", "fok"]),
        st.integers(min_value=1, max_value=20),
        st.integers(min_value=97, max_value=103),
    ),
    min_size=2,
    max_size=20,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(commands=BATCH, fail_at=st.integers(min_value=1, max_value=40))
def test_a_failure_anywhere_in_a_batch_takes_back_its_command_alone(  # type: ignore[no-untyped-def]
    engine: Container, monkeypatch: pytest.MonkeyPatch, commands, fail_at
) -> None:
    """Whichever step of whichever command fails (the n-th change the batch records: a
    reservation, a trade's either side, a stop's trigger, a cancellation), only that command is
    taken back; the books, balances and the engine's memory all stay right."""
    prefix = new_id()[:8]
    core = engine.orders.engine
    for who in "abc":
        user = f"{prefix}{who}"
        fund(engine, user, "10000")
        locate(engine, user)
        set_limits(engine, user, max_orders_per_second="100000")
    # A book to trade against, and orders to cancel or modify.
    resting = [
        place(engine, f"{prefix}a", "sell_short", "5", "101.00"),
        place(engine, f"{prefix}b", "buy", "5", "99.00"),
        place(engine, f"{prefix}c", "buy", "3", None, type="stop", stop="101.00", tif="gtc"),
    ]
    ids = [(f"{prefix}{w}", o["id"]) for w, o in zip("abc", resting, strict=True)]
    batch: list[Any] = []
    for action, who, side, kind, tif, qty, price in commands:
        user = f"{prefix}{who}"
        owner, oid = ids[qty % len(ids)]
        if action == "cancel":
            batch.append(Cancel(owner, f"user:{owner}", oid))
        elif action == "modify":
            batch.append(Modify(owner, f"user:{owner}", oid, quantity=D(qty)))
        else:
            batch.append(
                Place(
                    user,
                    f"user:{user}",
                    OrderTicket(
                        "ACME",
                        OrderSide(side),
                        OrderType(kind),
                        D(qty),
                        TimeInForce("day" if kind == "market" and tif == "gtc" else tif),
                        D(price) if kind in ("limit", "stop_limit") else None,
                        D(price) if kind in ("stop", "stop_limit") else None,
                    ),
                )
            )
    calls = [0]
    original = core.core.execution.record

    def failing(*args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        original(*args, **kwargs)
        if calls[0] == fail_at:
            raise RuntimeError("an unexpected failure")

    async def run() -> list[Any]:
        return await asyncio.gather(*(core.execute(c) for c in batch), return_exceptions=True)

    with monkeypatch.context() as patch:
        patch.setattr(core.core.execution, "record", failing)
        rebuilds = _count_rebuilds(patch, core)
        batches = core.batches
        results = asyncio.run(run())
        assert core.batches == batches + 1
        assert rebuilds == []
    failed = [r for r in results if isinstance(r, UnavailableError)]
    assert len(failed) == (1 if calls[0] >= fail_at else 0)
    assert_invariants(engine)
    assert_memory_matches_database(engine)

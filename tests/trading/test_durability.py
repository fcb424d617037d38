"""Crash safety and races: SIGKILL mid-stream, 200 orders racing for buying power, two engines."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.kernel.ids import new_id
from rampart.trading.domain import OrderSide, OrderTicket, OrderType
from rampart.trading.engine import Cancel, Modify, Place
from rampart.venue.domain import TimeInForce
from tests.trading.support import (
    assert_invariants,
    cash,
    fund,
    locate,
    place,
    seed,
    set_limits,
)

ROOT = Path(__file__).resolve().parents[2]


def test_killed_mid_stream_loses_nothing_and_doubles_nothing(
    container: Container, settings: Settings
) -> None:
    seed(container)
    for user in ("u1", "u2", "u3", "u4"):
        fund(container, user, "1000000")
        locate(container, user)
    worker = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("crash_worker.py")),
            settings.effective_database_url,
            str(settings.data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        # This checkout's sources first: the worker must run the code under test, not whatever
        # the virtualenv's editable install points at (another worktree's).
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])},
    )
    try:
        assert worker.stdout is not None
        batches = 0
        while batches < 8:  # several committed batches, then kill while it is mid-stream
            line = worker.stdout.readline()
            assert line, "the worker died"
            batches += line == b"batch\n"

    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    # A fresh process: books rebuilt from the open orders, every invariant holds.
    engine = container.orders.engine
    engine.start()
    assert_invariants(container)
    before = len(engine.core.book)
    assert before > 0
    # The rebuilt book trades: a large marketable order sweeps resting asks.
    place(container, "u1", "buy", "50", "110")
    place(container, "u2", "sell_short", "50", "90")
    assert_invariants(container)


def test_200_simultaneous_orders_never_overspend(engine: Container) -> None:
    fund(engine, "racer", "1000.00")  # 10 orders of 1 x about 100, fees aside
    # 200 orders in one (frozen) second: the message throttle would refuse most of them first.
    set_limits(engine, "racer", max_orders_per_second="1000")

    async def race() -> list[dict[str, object]]:
        service = engine.orders
        # Distinct prices: identical orders would be refused as duplicates before buying power.
        requests = [
            OrderTicket(
                "ACME", OrderSide.BUY, OrderType.LIMIT, D(1), limit_price=D(100) + D("0.01") * i
            )
            for i in range(200)
        ]
        results = await asyncio.gather(*(service.place("racer", "user:racer", r) for r in requests))
        return [r.order for r in results]

    orders = asyncio.run(race())
    accepted = [o for o in orders if o["status"] == "accepted"]
    spent = sum((D(str(o["limit_price"])) for o in accepted), D(0))
    # Nine fit once the buying-power check holds back each order's estimated fee.
    assert len(accepted) == 9
    assert spent <= D("1000.00")
    assert {o["reason"] for o in orders if o["status"] == "rejected"} == {
        "insufficient-buying-power"
    }
    assert cash(engine, "racer") == (D("1000.00"), spent)
    assert_invariants(engine)


def test_two_engines_on_one_database_never_overspend(engine: Container, settings: Settings) -> None:
    """Two processes' engines (here: two containers) racing for one account's buying power."""
    fund(engine, "racer", "1000.00")
    set_limits(engine, "racer", max_orders_per_second="1000")
    other = bootstrap(settings, clock=engine.clock)
    other.orders.engine.start()
    try:
        futures = []
        for i in range(100):
            for n, c in enumerate((engine, other)):
                # Distinct prices (identical orders would be refused as duplicates).
                price = D(100) - D("0.01") * (2 * i + n)
                request = OrderTicket(
                    "ACME", OrderSide.BUY, OrderType.LIMIT, D(1), limit_price=price
                )
                futures.append(c.orders.engine.submit(Place("racer", "user:racer", request)))
        orders = [f.result(60).order for f in futures]
        accepted = [o for o in orders if o["status"] == "accepted"]
        spent = sum((D(str(o["limit_price"])) for o in accepted), D(0))
        # However the two engines interleave, the account is never overspent.
        assert len(accepted) >= 9
        assert spent <= D("1000.00")
        assert cash(engine, "racer")[1] == spent
        # Each engine rebuilds after the other's batches: both see every open order.
        open_a = place(engine, "seller", "sell_short", "1", "100")
        assert open_a["status"] == "rejected"  # the seller has no cash to collateralise
        fund(engine, "seller", "1000")
        locate(engine, "seller")
        # Sweeps every resting buy (all priced from 99.82 to 100), whichever engine took them.
        filled = place(other, "seller", "sell_short", str(len(accepted)), "99")
        assert filled["status"] == "filled"
    finally:
        other.orders.engine.stop()
        other.close()
    assert_invariants(engine)


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["place", "place", "place", "cancel", "modify"]),
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["buy", "sell", "sell_short"]),
        st.sampled_from(["limit", "market", "stop", "stop_limit"]),
        st.sampled_from(["day", "gtc", "ioc", "fok"]),
        st.integers(min_value=1, max_value=30),
        st.integers(min_value=95, max_value=105),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=ACTIONS)
def test_any_sequence_of_orders_keeps_the_books_right(engine: Container, actions) -> None:  # type: ignore[no-untyped-def]
    prefix = new_id()[:8]
    for user in "abc":
        fund(engine, f"{prefix}{user}", "5000")
        locate(engine, f"{prefix}{user}")
        # Hypothesis sends many orders in one frozen second, identical ones included: this test
        # is about the books, so the throttle and the duplicate window are out of its way.
        set_limits(engine, f"{prefix}{user}", max_orders_per_second="100000")
    placed: list[tuple[str, str]] = []
    refusals: list[str | None] = []
    core = engine.orders.engine
    for action, who, side, kind, tif, qty, price in actions:
        user = f"{prefix}{who}"
        try:
            if action == "place" or not placed:
                if kind == "market" and tif == "gtc":
                    tif = "day"
                request = OrderTicket(
                    "ACME",
                    OrderSide(side),
                    OrderType(kind),
                    D(qty),
                    TimeInForce(tif),
                    D(price) if kind in ("limit", "stop_limit") else None,
                    D(price) if kind in ("stop", "stop_limit") else None,
                )
                order = core.call(Place(user, f"user:{user}", request)).order
                placed.append((user, order["id"]))
            elif action == "cancel":
                owner, oid = placed[qty % len(placed)]
                core.call(Cancel(owner, "user:x", oid))
            else:
                owner, oid = placed[qty % len(placed)]
                core.call(Modify(owner, "user:x", oid, quantity=D(qty)))
        except Exception as exc:  # noqa: BLE001 - refusals are fine; the books must hold
            refusals.append(getattr(exc, "code", None))
    assert set(refusals) <= {
        "order-not-open",
        "modify-rejected",
        "invalid-order",
        "order-not-found",
    }
    assert_invariants(engine)

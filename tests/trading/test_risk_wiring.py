"""The order engine and the risk gate wired together as in production (`pre_trade = full`):
the principal's authority reaches the gate, fills feed it, modifications are not counted twice,
the day's activity and realised loss survive a restart, restricted securities agree, order entry
is throttled."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
from fastapi.testclient import TestClient

from rampart.access.domain import Permission, Principal
from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.trading.domain import OrderSide, OrderTicket, OrderType
from rampart.trading.engine import Modify, Place
from rampart.venue.domain import InstrumentStatus
from tests.trading.support import (
    assert_invariants,
    fund,
    locate,
    open_account,
    place,
    seed,
    set_limits,
)

COMPLIANCE = Principal(
    actor="user:compliance",
    user_id="compliance",
    permissions=frozenset({str(Permission.COMPLIANCE_HALT), str(Permission.RISK_LIMITS)}),
    method="session",
)


def _limit(side: str, quantity: str, price: str) -> OrderTicket:
    return OrderTicket("ACME", OrderSide(side), OrderType.LIMIT, D(quantity), limit_price=D(price))


def test_full_checks_are_the_default_and_refuse_unverified_or_mfa_less_accounts(
    engine: Container,
) -> None:
    assert engine.settings.risk.pre_trade == "full"
    open_account(engine, "unverified", verified=False)
    open_account(engine, "no-mfa", mfa=False)
    for user in ("unverified", "no-mfa"):
        with engine.uow() as uow:
            engine.ledger.deposit(uow, user, "10000")
            uow.commit()
    assert place(engine, "unverified", "buy", "1", "100")["reason"] == "email-not-verified"
    assert place(engine, "no-mfa", "buy", "1", "100")["reason"] == "mfa-not-enrolled"
    # Not an identity account at all: refused, never waved through.
    with engine.uow() as uow:
        engine.ledger.deposit(uow, "ghost", "10000")
        uow.commit()
    assert place(engine, "ghost", "buy", "1", "100")["reason"] == "account-not-active"
    fund(engine, "alice", "10000")
    assert place(engine, "alice", "buy", "1", "100")["status"] == "accepted"


def test_the_principals_permissions_reach_the_gate(engine: Container) -> None:
    fund(engine, "alice", "10000")
    read_only = engine.orders.engine.call(
        Place("alice", "apikey:k1", _limit("buy", "1", "100"), permissions=frozenset({"x"}))
    )
    assert read_only.order["reason"] == "not-authorised"
    allowed = engine.orders.engine.call(
        Place(
            "alice",
            "apikey:k1",
            _limit("buy", "1", "100"),
            permissions=frozenset({str(Permission.ORDER_PLACE)}),
            credential_id="k1",
        )
    )
    assert allowed.order["status"] == "accepted"


def test_a_modification_is_checked_for_its_difference_not_counted_twice(engine: Container) -> None:
    # Cash for one order of 10 x 100 and its fee: a modify that replaces it must still pass.
    fund(engine, "alice", "1000.50")
    order = place(engine, "alice", "buy", "10", "100.00")
    assert order["status"] == "accepted"
    smaller = engine.orders.engine.call(
        Modify("alice", "user:alice", order["id"], quantity=D(9), limit_price=D("99.50"))
    )
    assert smaller["quantity"] == "9"
    assert_invariants(engine)


def test_fills_feed_the_repeated_execution_throttle(engine: Container) -> None:
    fund(engine, "alice", "100000")
    fund(engine, "bob", "100000")
    locate(engine, "bob")
    set_limits(engine, "alice", max_executions_in_window="2")
    for _ in range(2):
        place(engine, "bob", "sell_short", "1", "100.00")
        assert place(engine, "alice", "buy", "1", "100.00")["status"] == "filled"
        engine.clock.advance(timedelta(seconds=2))  # type: ignore[attr-defined]
    place(engine, "bob", "sell_short", "1", "100.00")
    refused = place(engine, "alice", "buy", "1", "100.00")
    assert refused["reason"] == "repeated-execution"


def test_the_days_counts_survive_a_restart(engine: Container, settings: Settings) -> None:
    fund(engine, "alice", "100000")
    set_limits(engine, "alice", max_orders_per_day="2")
    assert place(engine, "alice", "buy", "1", "99.00")["status"] == "accepted"
    assert place(engine, "alice", "buy", "1", "98.00")["status"] == "accepted"
    engine.orders.engine.stop()
    # A new process: its gate has seen nothing, the database has seen everything.
    restarted = bootstrap(settings, clock=engine.clock)
    restarted.start()
    try:
        assert place(restarted, "alice", "buy", "1", "97.00")["reason"] == "daily-order-limit"
        with restarted.db.read() as session:
            day = restarted.orders.day_activity(session, "alice", engine.clock.now().date())
        assert day.orders_today == 2
    finally:
        restarted.close()
    engine.orders.engine.start()


def test_the_days_realised_loss_survives_a_restart(engine: Container, settings: Settings) -> None:
    fund(engine, "alice", "100000")
    fund(engine, "bob", "100000")
    locate(engine, "bob")
    set_limits(engine, "alice", daily_loss_limit="75")
    today = engine.clock.now().date()
    place(engine, "bob", "sell_short", "20", "100.00")
    assert place(engine, "alice", "buy", "20", "100.00")["status"] == "filled"
    place(engine, "bob", "buy", "10", "95.00")
    # Alice closes half at a loss of 50; the other half, marked at 95, is 50 down too.
    assert place(engine, "alice", "sell", "10", "95.00")["status"] == "filled"
    with engine.db.read() as session:
        alice = engine.orders.day_activity(session, "alice", today)
        bob = engine.orders.day_activity(session, "bob", today)
    assert (alice.realised_pnl_today, bob.realised_pnl_today) == (D(-50), D(50))
    engine.orders.engine.stop()
    # A new process: were today's realised loss measured from its first look at the ledger, it
    # would see only the unrealised 50 and let alice open more.
    restarted = bootstrap(settings, clock=engine.clock)
    restarted.start()
    try:
        assert place(restarted, "alice", "buy", "1", "95.00")["reason"] == "daily-loss-limit"
        assert place(restarted, "alice", "sell", "1", "95.00")["status"] == "accepted"
        with restarted.db.read() as session:
            tomorrow = restarted.orders.day_activity(session, "alice", today + timedelta(days=1))
        assert tomorrow.realised_pnl_today == 0
    finally:
        restarted.close()
    engine.orders.engine.start()


def test_day_activity_reports_trades_short_sales_and_day_trade_dates(engine: Container) -> None:
    fund(engine, "alice", "100000")
    fund(engine, "bob", "100000")
    locate(engine, "bob")
    today = engine.clock.now().date()
    place(engine, "bob", "sell_short", "3", "100.00")
    place(engine, "alice", "buy", "3", "100.00")
    engine.clock.advance(timedelta(seconds=2))  # type: ignore[attr-defined]
    place(engine, "bob", "buy", "1", "100.00")
    place(engine, "alice", "sell", "1", "100.00")
    with engine.db.read() as session:
        alice = engine.orders.day_activity(session, "alice", today)
        bob = engine.orders.day_activity(session, "bob", today)
    assert (alice.orders_today, alice.trades_today) == (2, 2)
    assert alice.day_trade_dates == (today,)
    assert bob.short_sold_today == {"ACME": D(3)}
    assert bob.day_trade_dates == (today,)


def test_a_restricted_security_takes_reducing_orders_only_in_both_rules(engine: Container) -> None:
    fund(engine, "alice", "100000")
    fund(engine, "bob", "100000")
    locate(engine, "bob")
    place(engine, "bob", "sell_short", "10", "100.00")
    assert place(engine, "alice", "buy", "10", "100.00")["status"] == "filled"
    engine.clock.advance(timedelta(seconds=2))  # type: ignore[attr-defined]
    # The risk gate's restricted list...
    with engine.uow() as uow:
        engine.risk.restrict(uow, COMPLIANCE, "ACME", "under review")
        uow.commit()
    assert place(engine, "alice", "buy", "1", "100.00")["reason"] == "restricted-security"
    assert place(engine, "alice", "sell", "4", "101.00")["status"] == "accepted"
    # ...and the instrument's own restricted status, with the gate still on, agree.
    with engine.uow() as uow:
        engine.risk.unrestrict(uow, COMPLIANCE, "ACME", "review done")
        engine.instruments.set_status(uow, "ACME", InstrumentStatus.RESTRICTED)
        uow.commit()
    assert place(engine, "alice", "buy", "1", "100.00")["reason"] == "instrument-restricted"
    assert place(engine, "alice", "sell", "6", "101.00")["status"] == "accepted"
    # More than is held would open a short: refused.
    assert place(engine, "alice", "sell", "1", "101.00")["status"] == "rejected"
    assert_invariants(engine)


def test_order_entry_is_rate_limited_per_user(
    trader_client: TestClient, container: Container
) -> None:
    seed(container)
    fund(container, "alice", "100")
    headers = {"x-test-user": "alice"}
    body = {"symbol": "ACME", "side": "buy", "type": "limit", "quantity": "1"}
    statuses = []
    # The clock is frozen: the bucket (burst 100) does not refill during the test.
    for i in range(101):
        response = trader_client.post(
            "/v1/orders", json={**body, "limit_price": f"{50 + i}.00"}, headers=headers
        )
        statuses.append(response.status_code)
    assert statuses[:100] == [201] * 100
    assert statuses[100] == 429


def test_between_reads_of_the_days_activity_the_gate_counts_on_exactly(
    engine: Container, settings: Settings
) -> None:
    """Today's activity is re-read only every `activity_ttl_seconds` (its cost grows with the
    day's volume); in between, the daily limits must still hold, from what the gate sees and
    from each reload's ledger totals."""
    engine.orders.engine.stop()
    risk = settings.risk.model_copy(
        update={"facts_ttl_seconds": 0.001, "activity_ttl_seconds": 600}
    )
    rarely = bootstrap(settings.model_copy(update={"risk": risk}), clock=engine.clock)
    rarely.start()
    try:
        fund(rarely, "alice", "100000")
        fund(rarely, "bob", "100000")
        locate(rarely, "bob")
        set_limits(rarely, "alice", daily_loss_limit="75")
        set_limits(rarely, "bob", max_orders_per_day="4")
        # The first order reads the day's activity; everything after is counted on.
        place(rarely, "bob", "sell_short", "20", "100.00")
        assert place(rarely, "alice", "buy", "20", "100.00")["status"] == "filled"
        place(rarely, "bob", "buy", "10", "95.00")
        assert place(rarely, "alice", "sell", "10", "95.00")["status"] == "filled"
        # A realised loss of 50 and 50 unrealised: at the limit, only reducing orders pass.
        assert place(rarely, "alice", "buy", "1", "95.00")["reason"] == "daily-loss-limit"
        assert place(rarely, "alice", "sell", "1", "96.00")["status"] == "accepted"
        gate = rarely.risk_gate
        assert gate is not None
        state = gate._accounts["alice"]
        # Bought and sold ACME today: one day trade, seen here though not yet re-read.
        assert gate._day_trade_dates(state) == (engine.clock.now().date(),)
        assert state.realised_today == D(-50)
        assert state.orders_today == 3  # the refused order does not count
        # Bob's two orders so far were counted on too: two more, then the limit.
        # (Short 10, bob's buys would reduce, and a reducing order is never refused for count.)
        for price in ("101.00", "102.00"):
            placed = place(rarely, "bob", "sell_short", "1", price)
            assert placed["status"] == "accepted", placed["reason"]
        assert place(rarely, "bob", "sell_short", "1", "103.00")["reason"] == "daily-order-limit"
        # A fresh read agrees with what was counted.
        with rarely.db.read() as session:
            day = rarely.orders.day_activity(session, "alice", engine.clock.now().date())
        assert (day.orders_today, day.realised_pnl_today) == (state.orders_today, D(-50))
        assert_invariants(rarely)
    finally:
        rarely.close()
    engine.orders.engine.start()


def test_a_reload_due_mid_batch_never_forgets_the_batchs_own_orders(
    engine: Container, settings: Settings
) -> None:
    """The gate's reloads read committed rows; inside a batch the orders it already accepted
    exist only in the engine's memory. Reloads happen before a batch, never in it: five orders in
    one batch against a limit of four a day, with every reload due at once."""
    import asyncio

    engine.orders.engine.stop()
    eager = {"facts_ttl_seconds": 0.001, "activity_ttl_seconds": 0.001}
    risk = settings.risk.model_copy(update=eager)
    busy = bootstrap(settings.model_copy(update={"risk": risk}), clock=engine.clock)
    busy.start()
    try:
        fund(busy, "alice", "100000")
        set_limits(busy, "alice", max_orders_per_day="4")

        async def one_batch() -> list[object]:
            # Submitted in one event-loop tick: the engine takes them as one batch.
            return await asyncio.gather(
                *(
                    busy.orders.engine.execute(
                        Place("alice", "user:alice", _limit("buy", "1", f"9{k}.00"))
                    )
                    for k in range(5)
                )
            )

        batches_before = busy.orders.engine.batches
        results = asyncio.run(one_batch())
        assert busy.orders.engine.batches == batches_before + 1
        statuses = [r.order["status"] for r in results]  # type: ignore[attr-defined]
        reasons = [r.order["reason"] for r in results]  # type: ignore[attr-defined]
        assert statuses[:4] == ["accepted"] * 4
        assert reasons[4] == "daily-order-limit"
        assert_invariants(busy)
    finally:
        busy.close()
    engine.orders.engine.start()


def _rarely(engine: Container, settings: Settings) -> Container:
    """A container whose gate reloads facts at once but re-reads the day's activity rarely."""
    engine.orders.engine.stop()
    rare = {"facts_ttl_seconds": 0.001, "activity_ttl_seconds": 600}
    risk = settings.risk.model_copy(update=rare)
    container = bootstrap(settings.model_copy(update={"risk": risk}), clock=engine.clock)
    container.start()
    return container


def test_a_failed_reload_never_restarts_the_days_counts(
    engine: Container, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rarely = _rarely(engine, settings)
    try:
        fund(rarely, "alice", "100000")
        set_limits(rarely, "alice", max_orders_per_day="2")
        for price in ("90.00", "91.00"):
            assert place(rarely, "alice", "buy", "1", price)["status"] == "accepted"
        rarely.risk_gate.forget("alice")
        located = rarely.risk.located
        calls = {"n": 0}

        def flaky(*args: object, **kwargs: object) -> object:
            calls["n"] += 1
            if calls["n"] <= 2:
                raise RuntimeError("database went away for a moment")
            return located(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(rarely.risk, "located", flaky)
        # Both reloads (before the batch, then the order's own) fail after the day's activity
        # was read: refused (fail closed)...
        assert place(rarely, "alice", "buy", "1", "92.00")["reason"] == "risk-check-error"
        # ...and the next load reads the day again: two orders today already.
        assert place(rarely, "alice", "buy", "1", "93.00")["reason"] == "daily-order-limit"
        assert calls["n"] == 3
    finally:
        rarely.close()
    engine.orders.engine.start()


def test_a_day_trade_straddling_a_read_of_the_day_is_counted(
    engine: Container, settings: Settings
) -> None:
    rarely = _rarely(engine, settings)
    try:
        fund(rarely, "alice", "100000")
        fund(rarely, "bob", "100000")
        locate(rarely, "bob")
        place(rarely, "bob", "sell_short", "2", "100.00")
        assert place(rarely, "alice", "buy", "2", "100.00")["status"] == "filled"
        # A fresh view (a restart, another process): it reads that ACME was bought today...
        rarely.risk_gate.forget("alice")
        place(rarely, "bob", "buy", "1", "100.00")
        # ...and the sale after the read makes today's first day trade, before any re-read.
        assert place(rarely, "alice", "sell", "1", "100.00")["status"] == "filled"
        gate = rarely.risk_gate
        state = gate._accounts["alice"]
        today = engine.clock.now().date()
        assert gate._day_trade_dates(state) == (today,)
    finally:
        rarely.close()
    engine.orders.engine.start()


def test_another_writer_makes_the_gate_read_everything_afresh(
    engine: Container, settings: Settings
) -> None:
    """Between re-reads a process counts only its own orders: once the engine sees that another
    writer traded (the epoch moved), every view the gate keeps is read again."""
    from sqlalchemy import text

    rarely = _rarely(engine, settings)
    try:
        fund(rarely, "alice", "100000")
        set_limits(rarely, "alice", max_orders_per_day="2")
        assert place(rarely, "alice", "buy", "1", "90.00")["status"] == "accepted"
        # Another process's batch: an order it accepted, and the epoch it bumped.
        with rarely.uow() as uow:
            conn = uow.session.connection()
            conn.execute(text("UPDATE trading_engine_state SET epoch = epoch + 1"))
            uow.commit()
        view = rarely.risk_gate._accounts["alice"]
        assert place(rarely, "alice", "buy", "1", "91.00")["status"] == "accepted"
        assert rarely.risk_gate._accounts["alice"] is not view
        assert place(rarely, "alice", "buy", "1", "92.00")["reason"] == "daily-order-limit"
    finally:
        rarely.close()
    engine.orders.engine.start()

"""Risk storage and use cases, on SQLite and PostgreSQL: halts and the four-eyes resume, limits,
states, locates, risk events, cancel-on-disconnect, and the gate in front of the order engine."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from rampart.access.domain import PermissionDeniedError, Principal, Role, permissions_for
from rampart.bootstrap import Container
from rampart.kernel.ids import new_id
from rampart.platform.outbox import OutboxRow
from rampart.risk.controls import ControlBook
from rampart.risk.db import RegulatorNotificationRow, RiskEventRow, TradingStateRow
from rampart.risk.domain import (
    AccountStatus,
    ActivityTracker,
    HaltScope,
    OrderType,
    RejectCode,
    RiskConfig,
    RiskPipeline,
    Side,
    TradingState,
)
from rampart.risk.gate import RiskGate
from rampart.risk.halts import AlreadyHaltedError, FourEyesError, ResumeNotRequestedError
from rampart.risk.inputs import PersonRequiredError
from rampart.risk.limits import InvalidLimitsError
from rampart.risk.ports import AccountFacts, TraderProfile
from rampart.risk.service import RiskService
from rampart.risk.setup import default_limits
from tests.risk.factories import D, instrument, order


def person(role: str, name: str | None = None) -> Principal:
    user = name or new_id()
    return Principal(
        actor=f"user:{user}",
        user_id=user,
        roles=frozenset({role}),
        permissions=permissions_for({role}),
        method="session",
        credential_id=f"session-{user}",
    )


class FakeCanceller:
    """Stands in for the order engine: open orders per account and symbol."""

    def __init__(self) -> None:
        self.open: list[tuple[str, str]] = []
        self.calls: list[dict[str, Any]] = []

    def cancel_open_orders(
        self, *, account_id: str | None = None, symbol: str | None = None, reason: str
    ) -> int:
        self.calls.append({"account_id": account_id, "symbol": symbol, "reason": reason})
        keep = [
            (a, s)
            for a, s in self.open
            if (account_id is not None and a != account_id) or (symbol is not None and s != symbol)
        ]
        cancelled = len(self.open) - len(keep)
        self.open = keep
        return cancelled


class FakeProfiles:
    def __init__(self) -> None:
        self.profiles: dict[str, TraderProfile] = {}

    def trader_profile(self, session: Any, account_id: str) -> TraderProfile | None:
        return self.profiles.get(account_id, TraderProfile(AccountStatus.ACTIVE, True, True))


class FakeFacts:
    def __init__(self) -> None:
        self.cash = D(1_000_000)

    def account_facts(self, session: Any, account_id: str, today: date) -> AccountFacts:
        return AccountFacts(cash=self.cash, reserved=D(0))


@pytest.fixture
def risk(container: Container) -> RiskService:
    service = container.risk
    service.canceller = FakeCanceller()
    return service


@pytest.fixture
def gate(container: Container, risk: RiskService) -> RiskGate:
    """A full-pipeline gate over fakes for identity and the ledger."""
    return RiskGate(
        RiskPipeline(RiskConfig(), risk.activity),
        risk,
        container.db,
        container.clock,
        profiles=FakeProfiles(),
        facts=FakeFacts(),
    )


def decide(gate: RiskGate, **overrides: Any) -> Any:
    request = order(**overrides)
    return gate.evaluate(request, gate.account_snapshot(request), instrument(
        symbol=request.symbol))  # fmt: skip


# --- halts -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scope", "target", "code"),
    [
        (HaltScope.MARKET, None, RejectCode.MARKET_HALTED),
        (HaltScope.SYMBOL, "ACME", RejectCode.SYMBOL_HALTED),
        (HaltScope.ACCOUNT, "acct-1", RejectCode.ACCOUNT_HALTED),
    ],
)
def test_a_halt_blocks_new_orders_and_cancels_pending_ones_within_one_request(
    container: Container,
    risk: RiskService,
    gate: RiskGate,
    scope: HaltScope,
    target: str | None,
    code: RejectCode,
) -> None:
    canceller = risk.canceller
    assert isinstance(canceller, FakeCanceller)
    canceller.open = [("acct-1", "ACME"), ("acct-1", "OTHER"), ("acct-2", "ACME")]
    assert decide(gate).accepted
    with container.uow() as uow:
        ticket = risk.halt(uow, person(Role.COMPLIANCE), scope, target, "erroneous prints")
        # Refused from the moment of the halt, before its transaction even commits.
        assert decide(gate, quantity=D(11)).code is code
        assert canceller.calls == []
        uow.commit()
    assert decide(gate, quantity=D(12)).code is code
    expected = {HaltScope.MARKET: 3, HaltScope.SYMBOL: 2, HaltScope.ACCOUNT: 2}[scope]
    assert ticket.cancelled_orders == expected
    assert canceller.calls[0]["reason"] == "trading-halted"
    with container.db.read() as session:
        notes = list(session.scalars(select(RegulatorNotificationRow)))
        assert [(n.event, n.halt_id) for n in notes] == [("halt", ticket.halt.id)]
        topics = [row.topic for row in session.scalars(select(OutboxRow))]
        assert "risk.trading-halted" in topics


def test_other_symbols_keep_trading_through_a_symbol_halt(
    container: Container, risk: RiskService, gate: RiskGate
) -> None:
    with container.uow() as uow:
        risk.halt(uow, person(Role.COMPLIANCE), HaltScope.SYMBOL, "acme", "news pending")
        uow.commit()
    assert decide(gate).code is RejectCode.SYMBOL_HALTED
    assert decide(gate, symbol="OTHER").accepted


def test_a_halt_survives_a_restart(container: Container, risk: RiskService) -> None:
    with container.uow() as uow:
        risk.halt(uow, person(Role.ADMIN), HaltScope.SYMBOL, "ACME", "fat finger")
        risk.halt(uow, person(Role.ADMIN), HaltScope.ACCOUNT, "acct-9", "compromised key")
        uow.commit()
    # A new process: a fresh book, loaded from the database.
    fresh = RiskService(
        container.settings.risk,
        container.clock,
        ControlBook(default_limits(container.settings.risk)),
        ActivityTracker(),
    )
    with container.db.read() as session:
        controls = fresh.load(session)
    assert controls.halted_symbols == {"ACME"}
    assert controls.halted_accounts == {"acct-9"}
    assert not controls.market_halted


def test_halting_twice_is_refused_and_needs_the_permission(
    container: Container, risk: RiskService
) -> None:
    with container.uow() as uow:
        risk.halt(uow, person(Role.COMPLIANCE), HaltScope.MARKET, None, "exchange outage")
        with pytest.raises(AlreadyHaltedError):
            risk.halt(uow, person(Role.COMPLIANCE), HaltScope.MARKET, None, "again")
    with container.uow() as uow, pytest.raises(PermissionDeniedError):
        risk.halt(uow, person(Role.TRADER), HaltScope.SYMBOL, "ACME", "I want to")
    bot = Principal("apikey:k1", "u1", permissions=permissions_for({Role.COMPLIANCE}),
                    method="apikey")  # fmt: skip
    with container.uow() as uow, pytest.raises(PersonRequiredError):
        risk.halt(uow, bot, HaltScope.SYMBOL, "ACME", "a script")


def halted(container: Container, risk: RiskService, halter: Principal) -> str:
    with container.uow() as uow:
        ticket = risk.halt(uow, halter, HaltScope.SYMBOL, "ACME", "volatility")
        uow.commit()
    return ticket.halt.id


def test_resume_by_the_halter_alone_is_refused(
    container: Container, risk: RiskService, gate: RiskGate
) -> None:
    alice = person(Role.COMPLIANCE, "alice")
    halt_id = halted(container, risk, alice)
    with container.uow() as uow, pytest.raises(ResumeNotRequestedError):
        risk.approve_resume(uow, alice, halt_id)
    with container.uow() as uow:
        risk.request_resume(uow, alice, halt_id, "volatility has passed")
        uow.commit()
    with container.uow() as uow, pytest.raises(FourEyesError):
        risk.approve_resume(uow, alice, halt_id)
    assert decide(gate).code is RejectCode.SYMBOL_HALTED


def test_a_second_person_resumes_trading(
    container: Container, risk: RiskService, gate: RiskGate
) -> None:
    alice, bob = person(Role.COMPLIANCE, "alice"), person(Role.ADMIN, "bob")
    halt_id = halted(container, risk, alice)
    with container.uow() as uow:
        risk.request_resume(uow, alice, halt_id, "volatility has passed")
        uow.commit()
    with container.uow() as uow:
        view = risk.approve_resume(uow, bob, halt_id)
        # Loosening waits for the commit.
        assert decide(gate).code is RejectCode.SYMBOL_HALTED
        uow.commit()
    assert view.status == "resumed"
    assert view.resume_requested_by == "user:alice"
    assert view.resumed_by == "user:bob"
    assert decide(gate, quantity=D(13)).accepted
    with container.db.read() as session:
        events = [n.event for n in session.scalars(select(RegulatorNotificationRow))]
        assert sorted(events) == ["halt", "resume"]


# --- limits and states -----------------------------------------------------------------------
def test_only_admins_change_limits_and_every_change_is_recorded(
    container: Container, risk: RiskService, gate: RiskGate
) -> None:
    with container.uow() as uow, pytest.raises(PermissionDeniedError):
        risk.set_limits(uow, person(Role.COMPLIANCE), "acct-1", {"max_order_quantity": "5"}, "x")
    with container.uow() as uow, pytest.raises(InvalidLimitsError):
        risk.set_limits(uow, person(Role.ADMIN), "acct-1", {"max_order_quantity": "-1"}, "x")
    with container.uow() as uow, pytest.raises(InvalidLimitsError):
        risk.set_limits(uow, person(Role.ADMIN), "acct-1", {"no_such_limit": "1"}, "x")
    with container.uow() as uow:
        result = risk.set_limits(
            uow, person(Role.ADMIN), "acct-1", {"max_order_quantity": "10"}, "new client"
        )
        uow.commit()
    assert result["overrides"] == {"max_order_quantity": "10"}
    assert decide(gate, quantity=D(10)).accepted
    assert decide(gate, quantity=D(11)).code is RejectCode.MAX_ORDER_QUANTITY
    assert decide(gate, account_id="acct-2", quantity=D(11)).accepted
    with container.db.read() as session:
        view = risk.limits(session, "acct-1")
        change = session.scalars(
            select(RiskEventRow).where(RiskEventRow.kind == "limit-change")
        ).one()
    assert view["effective"]["max_order_quantity"] == "10"
    assert change.data == {"before": {}, "after": {"max_order_quantity": "10"}}


def test_the_platform_defaults_can_be_overridden_by_an_admin(
    container: Container, risk: RiskService, gate: RiskGate
) -> None:
    with container.uow() as uow:
        risk.set_limits(uow, person(Role.ADMIN), None, {"max_order_quantity": "5"}, "caution")
        uow.commit()
    assert decide(gate, quantity=D(6)).code is RejectCode.MAX_ORDER_QUANTITY


def test_a_breached_limit_moves_the_account_to_reducing_durably(
    container: Container, risk: RiskService, gate: RiskGate
) -> None:
    with container.uow() as uow:
        risk.set_limits(uow, person(Role.ADMIN), "acct-1", {"max_gross_exposure": "500"}, "r")
        uow.commit()
    decision = decide(gate)
    assert decision.code is RejectCode.MAX_GROSS_EXPOSURE
    assert risk.book.controls.account_states["acct-1"] is TradingState.REDUCING
    with container.uow() as uow:
        assert gate.drain(uow) == 1
        uow.commit()
    with container.db.read() as session:
        state = session.get(TradingStateRow, "account:acct-1")
        assert state is not None
        assert state.state == "reducing"
        rejection = session.scalars(
            select(RiskEventRow).where(RiskEventRow.kind == "rejection")
        ).one()
        assert rejection.code == "max-gross-exposure"
        assert rejection.account_id == "acct-1"
    # Every process sees it after a reload.
    with container.db.read() as session:
        assert risk.load(session).account_states["acct-1"] is TradingState.REDUCING


def test_a_person_moves_an_account_back_to_active(
    container: Container, risk: RiskService, gate: RiskGate
) -> None:
    officer = person(Role.COMPLIANCE)
    with container.uow() as uow:
        risk.set_trading_state(uow, officer, "acct-1", TradingState.REDUCING, "review")
        uow.commit()
    assert decide(gate).code is RejectCode.REDUCE_ONLY
    with container.uow() as uow:
        risk.set_trading_state(uow, officer, "acct-1", TradingState.ACTIVE, "review done")
        uow.commit()
    assert decide(gate, quantity=D(14)).accepted


def test_repeated_executions_lock_the_account_with_a_halt_a_person_must_lift(
    container: Container, risk: RiskService, gate: RiskGate
) -> None:
    for _ in range(container.settings.risk.max_executions_in_window):
        gate.record_execution("acct-1", "ACME")
    decision = decide(gate)
    assert decision.code is RejectCode.REPEATED_EXECUTION
    assert decide(gate, symbol="OTHER").code is RejectCode.ACCOUNT_HALTED
    with container.uow() as uow:
        gate.drain(uow)
        uow.commit()
    with container.db.read() as session:
        active = risk.halts(session)
    assert [(h.scope, h.target, h.halted_by) for h in active] == [("account", "acct-1", "system")]
    alice, bob = person(Role.COMPLIANCE, "alice"), person(Role.COMPLIANCE, "bob")
    with container.uow() as uow:
        risk.request_resume(uow, alice, active[0].id, "the bot is fixed")
        uow.commit()
    with container.uow() as uow:
        risk.approve_resume(uow, bob, active[0].id)
        uow.commit()
    assert decide(gate, quantity=D(15)).accepted


# --- Regulation SHO ----------------------------------------------------------------------------
def test_a_short_sale_needs_a_recorded_locate(
    container: Container, risk: RiskService, gate: RiskGate
) -> None:
    assert decide(gate, side=Side.SELL_SHORT).code is RejectCode.LOCATE_REQUIRED
    with container.uow() as uow:
        risk.record_locate(uow, person(Role.ADMIN), "acct-1", "ACME", D(15), "desk-ref-1")
        uow.commit()
    gate.forget("acct-1")
    assert decide(gate, side=Side.SELL_SHORT, quantity=D(10)).accepted
    # The first short used 10 of the 15 located.
    assert decide(gate, side=Side.SELL_SHORT, quantity=D(6)).code is RejectCode.LOCATE_REQUIRED
    assert decide(gate, side=Side.SELL_SHORT, quantity=D(5)).accepted


# --- risk events ---------------------------------------------------------------------------------
def test_compliance_queries_risk_events_page_by_page(
    container: Container, risk: RiskService, gate: RiskGate
) -> None:
    for n in range(5):
        decide(gate, order_type=OrderType.LIMIT, limit_price=D(500), quantity=D(n + 1))
    with container.uow() as uow:
        gate.drain(uow)
        uow.commit()
    auditor = person(Role.COMPLIANCE)
    with container.db.read() as session:
        with pytest.raises(PermissionDeniedError):
            risk.events(session, person(Role.TRADER))
        first = risk.events(session, auditor, kind="rejection", limit=3)
        rest = risk.events(session, auditor, kind="rejection", limit=3, before=first[-1].id)
    codes = {e.code for e in first + rest}
    assert len(first) == 3
    assert len(rest) == 2
    assert len({e.id for e in first + rest}) == 5
    assert codes <= {"price-collar", "erroneous-order-pattern"}


# --- cancel on disconnect ----------------------------------------------------------------------
def test_cancel_on_disconnect(container: Container, risk: RiskService) -> None:
    canceller = risk.canceller
    assert isinstance(canceller, FakeCanceller)
    trader = person(Role.TRADER, "acct-1")
    canceller.open = [("acct-1", "ACME"), ("acct-2", "ACME")]
    with container.uow() as uow:
        assert risk.on_disconnect(uow, trader.credential_id) is False
    with container.uow() as uow:
        risk.enable_cancel_on_disconnect(uow, trader)
        uow.commit()
    with container.uow() as uow:
        assert risk.on_disconnect(uow, trader.credential_id) is True
        assert canceller.calls == []
        uow.commit()
    assert canceller.calls == [
        {"account_id": "acct-1", "symbol": None, "reason": "cancel-on-disconnect"}
    ]
    assert canceller.open == [("acct-2", "ACME")]
    with container.uow() as uow:
        risk.disable_cancel_on_disconnect(uow, trader)
        uow.commit()
    with container.uow() as uow:
        assert risk.on_disconnect(uow, trader.credential_id) is False


def test_the_gate_fails_closed_when_the_snapshot_cannot_be_built(
    container: Container, risk: RiskService
) -> None:
    class Broken:
        def account_facts(self, session: Any, account_id: str, today: date) -> AccountFacts:
            raise ConnectionError("ledger unreachable")

    gate = RiskGate(
        RiskPipeline(RiskConfig(), risk.activity), risk, container.db, container.clock,
        profiles=FakeProfiles(), facts=Broken(),
    )  # fmt: skip

    class Engine:
        user_id, symbol = "acct-1", "ACME"
        side, type = "buy", "limit"
        quantity, filled_quantity = Decimal(10), Decimal(0)
        limit_price, stop_price = Decimal(100), None

    class Context:
        action = "new"
        instrument = type("I", (), {"symbol": "ACME", "status": "active",
                                    "reference_price": Decimal(100), "threshold_security": False,
                                    "easy_to_borrow": True})()  # fmt: skip
        last_price = Decimal(100)
        cash_balance, cash_reserved, position_quantity = Decimal(10**6), Decimal(0), Decimal(0)
        actor, permissions, credential_id = "user:acct-1", frozenset({"order:place"}), None

    assert gate.check(Engine(), Context()) == "risk-check-error"

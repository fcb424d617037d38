"""People's changes take effect at the next order, from any process; a price cannot be walked
past the band in steps that each pass the per-order collar."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import typer
from sqlalchemy import select
from typer.testing import CliRunner

from rampart.access.domain import Principal
from rampart.bootstrap import Container, bootstrap
from rampart.config import Settings
from rampart.kernel.clock import FrozenClock
from rampart.risk.cli import mount
from rampart.risk.db import RiskEventRow, TradingStateRow
from rampart.risk.domain import TradingState
from rampart.risk.price_bands import set_price_band
from tests.access.support import new_account
from tests.trading.support import fund, locate, place, set_limits

RISK_ADMIN = Principal(
    actor="user:risk-admin",
    user_id="risk-admin",
    permissions=frozenset({"risk:limits"}),
    method="session",
)


def _cli(settings: Settings, clock: FrozenClock) -> typer.Typer:
    """The CLI as another process runs it: its own container on the same database."""
    app = typer.Typer()
    mount(app, lambda: bootstrap(settings, clock=clock))
    return app


def _drain(engine: Container) -> None:
    with engine.risk_gate.writing, engine.uow() as uow:
        engine.risk_gate.drain(uow)
        uow.commit()


def test_a_cli_reset_to_active_applies_to_the_next_order(
    engine: Container, settings: Settings, clock: FrozenClock
) -> None:
    officer = new_account(engine, "COMPLIANCE")
    fund(engine, "alice", "100000")
    set_limits(engine, "alice", max_gross_exposure="1000")
    assert place(engine, "alice", "buy", "11", "99.00")["reason"] == "max-gross-exposure"
    _drain(engine)  # the automatic REDUCING is durable, and pinned in the server's memory
    assert place(engine, "alice", "buy", "1", "98.00")["reason"] == "reduce-only"
    clock.advance(timedelta(seconds=1))
    reset = CliRunner().invoke(
        _cli(settings, clock),
        ["risk", "state", "active", "--account", "alice", "--as", officer, "--reason", "ok"],
    )
    assert reset.exit_code == 0, reset.output
    # The very next order, in the server process, sees the person's decision.
    assert place(engine, "alice", "buy", "1", "97.00")["status"] == "accepted"
    # Still warranted: the next breach moves the account to REDUCING again, with its reason.
    clock.advance(timedelta(seconds=1))
    assert place(engine, "alice", "buy", "10", "96.00")["reason"] == "max-gross-exposure"
    _drain(engine)
    with engine.db.read() as session:
        row = session.get(TradingStateRow, "account:alice")
        assert row is not None
        assert row.state == "reducing"
        assert row.reason.startswith("automatic after max-gross-exposure")
        changes = session.scalars(
            select(RiskEventRow.actor).where(RiskEventRow.kind == "state-change")
        ).all()
    assert changes == ["system", f"user:{officer}", "system"]
    assert engine.risk.state_of("alice")[0] is TradingState.REDUCING


def test_an_automatic_escalation_queued_before_a_persons_reset_does_not_undo_it(
    engine: Container, settings: Settings, clock: FrozenClock
) -> None:
    officer = new_account(engine, "COMPLIANCE")
    fund(engine, "alice", "100000")
    set_limits(engine, "alice", max_gross_exposure="1000")
    # Refused and pinned in memory; its escalation not yet written when the person acts.
    assert place(engine, "alice", "buy", "11", "99.00")["reason"] == "max-gross-exposure"
    clock.advance(timedelta(seconds=1))
    reset = CliRunner().invoke(
        _cli(settings, clock),
        ["risk", "state", "active", "--account", "alice", "--as", officer, "--reason", "ok"],
    )
    assert reset.exit_code == 0, reset.output
    _drain(engine)
    assert place(engine, "alice", "buy", "1", "97.00")["status"] == "accepted"
    with engine.db.read() as session:
        row = session.get(TradingStateRow, "account:alice")
        assert row is not None
        assert row.state == "active"


def test_a_limit_and_the_restricted_list_changed_in_another_process_apply_at_once(
    engine: Container, settings: Settings, clock: FrozenClock
) -> None:
    admin, officer = new_account(engine, "ADMIN"), new_account(engine, "COMPLIANCE")
    fund(engine, "alice", "100000")
    assert place(engine, "alice", "buy", "5", "99.00")["status"] == "accepted"
    app, runner = _cli(settings, clock), CliRunner()
    args = ["risk", "set-limit", "max_order_quantity", "3", "--account", "alice", "--reason", "r"]
    assert runner.invoke(app, [*args, "--as", admin]).exit_code == 0
    assert place(engine, "alice", "buy", "4", "98.00")["reason"] == "max-order-quantity"
    restrict = ["risk", "restrict", "ACME", "--as", officer, "--reason", "news pending"]
    assert runner.invoke(app, restrict).exit_code == 0
    assert place(engine, "alice", "buy", "2", "97.00")["reason"] == "restricted-security"


def _walk(engine: Container, clock: FrozenClock, prices: list[str]) -> list[str]:
    """Two accounts walk ACME's price: bob offers a step up, alice takes it. Returns each step's
    outcome for alice."""
    outcomes = []
    for price in prices:
        clock.advance(timedelta(seconds=1))
        offer = place(engine, "bob", "sell_short", "1", price)
        taken = place(engine, "alice", "buy", "1", price)
        outcomes.append(taken["status"] if taken["status"] != "rejected" else taken["reason"])
        if taken["status"] == "rejected":
            assert offer["status"] == "rejected"  # the offer is as far out of the band
            break
    return outcomes


WALK = ["100.00", "109.00", "118.80", "129.40", "141.00", "153.70", "167.50"]


def test_a_walk_in_collar_sized_steps_is_stopped_at_the_band(
    engine: Container, clock: FrozenClock
) -> None:
    for user in ("alice", "bob"):
        fund(engine, user, "1000000")
    locate(engine, "bob")
    # Each step is within the 10 % collar of the last trade; the band is 10 % of the 5-minute
    # average, which seconds of trading barely move.
    assert _walk(engine, clock, WALK) == ["filled", "filled", "price-band"]


def test_the_band_is_configured_per_instrument(engine: Container, clock: FrozenClock) -> None:
    for user in ("alice", "bob"):
        fund(engine, user, "1000000")
    locate(engine, "bob")
    with engine.uow() as uow:
        set_price_band(engine.risk, uow, RISK_ADMIN, "ACME", D(30), 300, "wide for the test")
        uow.commit()
    outcomes = _walk(engine, clock, WALK)
    assert outcomes[:4] == ["filled"] * 4
    assert outcomes[-1] == "price-band"
    # A price that holds its level for the whole window carries the band with it.
    clock.advance(timedelta(seconds=301))
    assert place(engine, "alice", "buy", "1", "140.00")["status"] == "accepted"


def test_only_a_risk_administrator_sets_a_band(engine: Container) -> None:
    import pytest

    from rampart.kernel.errors import ForbiddenError

    trader = Principal(actor="user:t", user_id="t", permissions=frozenset(), method="session")
    with engine.uow() as uow, pytest.raises(ForbiddenError):
        set_price_band(engine.risk, uow, trader, "ACME", D(50), None, "wider")

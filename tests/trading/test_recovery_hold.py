"""A recovery cooling period (after a four-eyes factor reset) stops new orders in the real
engine, with the reason `mfa-cooling-period`, until the 24 hours are over."""

from __future__ import annotations

from datetime import timedelta

from rampart.access.domain import Principal
from rampart.bootstrap import Container
from rampart.kernel.clock import FrozenClock
from tests.trading.support import enrol_totp, fund, place


def _support(name: str) -> Principal:
    return Principal(actor=f"user:{name}", user_id=name, roles=frozenset({"SUPPORT"}))


def test_orders_are_refused_during_the_cooling_period_after_a_factor_reset(
    engine: Container, clock: FrozenClock
) -> None:
    fund(engine, "reset-trader", "10000")
    assert place(engine, "reset-trader", "buy", "1", "100")["status"] != "rejected"
    with engine.uow() as uow:
        asked = engine.mfa.request_support_reset(
            uow,
            _support("desk-1"),
            "reset-trader",
            verification_method="video-call",
            verification_reference="CASE-77",
            reason="Lost the phone with the app",
        )
        uow.commit()
    with engine.uow() as uow:
        engine.mfa.approve_support_reset(uow, _support("desk-2"), asked.id)
        uow.commit()
    # A new factor straight away does not lift the hold (whoever sweet-talked support has one).
    enrol_totp(engine, "reset-trader")
    refused = place(engine, "reset-trader", "buy", "1", "100")
    assert refused["status"] == "rejected"
    assert refused["reason"] == "mfa-cooling-period"

    clock.advance(timedelta(hours=24, seconds=1))
    engine.risk_gate.forget("reset-trader")
    assert place(engine, "reset-trader", "buy", "1", "100")["status"] != "rejected"

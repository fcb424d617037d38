"""Builders for the risk pipeline's inputs: a generous account, instrument and limits that pass
every check, each adjustable one field at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

from rampart.risk.domain import (
    AccountSnapshot,
    AccountStatus,
    InstrumentSnapshot,
    InstrumentStatus,
    OpenOrderFact,
    OrderRequest,
    OrderType,
    PositionFact,
    RiskConfig,
    RiskLimits,
    Side,
    summarise_holdings,
)

D = Decimal
TRADE = frozenset({"order:place"})
#: A Monday.
MONDAY = date(2026, 1, 5)
SECOND = 1_000_000_000


def limits(**overrides: Any) -> RiskLimits:
    base = RiskLimits(
        max_order_quantity=D(1_000),
        max_order_notional=D(100_000),
        max_position_quantity=D(2_000),
        max_gross_exposure=D(1_000_000),
        daily_loss_limit=D(5_000),
        max_orders_per_day=100,
        max_trades_per_day=100,
        max_orders_per_second=10,
        max_window_notional=D(10_000_000),
        max_collar_strikes=3,
        max_executions_in_window=20,
    )
    return replace(base, **overrides)


def instrument(**overrides: Any) -> InstrumentSnapshot:
    base = InstrumentSnapshot(symbol="ACME", status=InstrumentStatus.ACTIVE, reference_price=D(100))
    return replace(base, **overrides)


def order(**overrides: Any) -> OrderRequest:
    base = OrderRequest(
        account_id="acct-1",
        symbol="ACME",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        quantity=D(10),
        limit_price=D(100),
        permissions=TRADE,
        actor="user:u1",
    )
    return replace(base, **overrides)


def account(
    *,
    config: RiskConfig | None = None,
    positions: list[PositionFact] | None = None,
    open_orders: list[OpenOrderFact] | None = None,
    cash: Decimal = D(1_000_000),
    **overrides: Any,
) -> AccountSnapshot:
    config = config or RiskConfig()
    holdings, gross, net_value, requirement = summarise_holdings(
        positions or [], open_orders or [], config
    )
    base = AccountSnapshot(
        account_id="acct-1",
        status=AccountStatus.ACTIVE,
        email_verified=True,
        mfa_enrolled=True,
        cash=cash,
        reserved=D(0),
        equity=cash + net_value,
        gross_exposure=gross,
        margin_requirement=requirement,
        realised_pnl_today=D(0),
        unrealised_pnl=D(0),
        orders_today=0,
        trades_today=0,
        holdings=holdings,
        today=MONDAY,
    )
    return replace(base, **overrides)


def long(symbol: str = "ACME", quantity: int = 100, price: int = 100) -> PositionFact:
    return PositionFact(symbol, D(quantity), D(price))


def short(symbol: str = "ACME", quantity: int = 100, price: int = 100) -> PositionFact:
    return PositionFact(symbol, D(-quantity), D(price))

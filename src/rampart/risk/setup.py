"""Building risk's components from the settings and the services they read (called by
`bootstrap`, which passes in what comes from above risk's layer as plain callables)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rampart.config import RiskSettings, Settings
from rampart.kernel.clock import Clock
from rampart.platform.db import Database
from rampart.platform.uow import UnitOfWork
from rampart.risk.adapters import (
    DayActivitySource,
    IdentityTraderProfiles,
    LedgerAccountFacts,
    OpenOrders,
    RiskWorker,
)
from rampart.risk.controls import ControlBook
from rampart.risk.domain import (
    NS_PER_SECOND,
    ActivityTracker,
    MarginMode,
    OpenOrderFact,
    RiskConfig,
    RiskLimits,
    RiskPipeline,
    Side,
)
from rampart.risk.gate import RiskGate
from rampart.risk.service import RiskService

#: An open order as the engine reports it: (id, symbol, side, remaining quantity, limit price,
#: filled quantity, filled notional).
EngineOpenOrder = tuple[str, str, Side, Decimal, Decimal | None, Decimal, Decimal]


@dataclass
class RiskComponents:
    service: RiskService
    gate: RiskGate
    worker: RiskWorker


def risk_config(settings: RiskSettings) -> RiskConfig:
    return RiskConfig(
        default_collar_percent=settings.price_collar_percent,
        margin_mode=MarginMode(settings.margin_mode),
        fee_rate=settings.fee_rate,
        fee_minimum=settings.fee_minimum,
        long_margin_rate=settings.long_margin_rate,
        short_margin_rate=settings.short_margin_rate,
        short_initial_margin=settings.short_initial_margin,
        pdt_min_equity=settings.pdt_min_equity,
        duplicate_window_ns=int(settings.duplicate_window_seconds * NS_PER_SECOND),
        erroneous_window_ns=settings.erroneous_window_seconds * NS_PER_SECOND,
        execution_window_ns=settings.execution_window_seconds * NS_PER_SECOND,
    )


def default_limits(settings: RiskSettings) -> RiskLimits:
    return RiskLimits(
        max_order_quantity=settings.max_order_quantity,
        max_order_notional=settings.max_order_notional,
        max_position_quantity=settings.max_position_quantity,
        max_gross_exposure=settings.max_gross_exposure,
        daily_loss_limit=settings.daily_loss_limit,
        max_orders_per_day=settings.max_orders_per_day,
        max_trades_per_day=settings.max_trades_per_day,
        max_orders_per_second=settings.max_orders_per_second,
        max_window_notional=settings.max_window_notional,
        max_collar_strikes=settings.max_collar_strikes,
        max_executions_in_window=settings.max_executions_in_window,
    )


def build_risk(
    settings: Settings,
    clock: Clock,
    db: Database,
    uow_factory: Callable[[], UnitOfWork],
    *,
    ledger: Any,
    users: Any,
    factors: Any,
    marks: Callable[[str], Decimal | None],
    open_orders: OpenOrders,
    day_activity: DayActivitySource | None = None,
) -> RiskComponents:
    config: RiskConfig = risk_config(settings.risk)
    if not settings.mfa.required_for_trading:
        from dataclasses import replace

        config = replace(config, require_mfa=False)
    activity = ActivityTracker()
    book = ControlBook(
        default_limits(settings.risk),
        band=(settings.risk.price_band_percent, settings.risk.price_band_window_seconds),
        now=clock.now,
    )
    service = RiskService(settings.risk, clock, book, activity)
    full = settings.risk.pre_trade == "full"
    pipeline = RiskPipeline(config, activity, only=None if full else RiskPipeline.CONTROLS_ONLY)
    gate = RiskGate(
        pipeline,
        service,
        db,
        clock,
        profiles=IdentityTraderProfiles(users, factors),
        facts=LedgerAccountFacts(
            ledger, marks, open_orders, day_activity, settings.risk.activity_ttl_seconds
        ),
        facts_ttl=settings.risk.facts_ttl_seconds,
        profile_ttl=settings.risk.profile_ttl_seconds,
        full=full,
    )
    worker = RiskWorker(db, uow_factory, service, gate, settings.risk.controls_refresh_seconds)
    return RiskComponents(service, gate, worker)


def open_orders_from_engine(
    open_orders_of: Callable[[str], Iterable[EngineOpenOrder]],
) -> OpenOrders:
    """Adapt the order engine's in-memory open orders (`OrderEngine.open_orders_of`: id, symbol,
    side, remaining quantity, limit price, filled quantity and notional) to the facts the
    pipeline needs: exact, including the
    orders of the batch being checked, and without reading the database. Every open order
    counts towards exposure, however many an account has."""

    def open_orders(account_id: str) -> list[OpenOrderFact]:
        return [
            OpenOrderFact(symbol, side, remaining, price, order_id, filled, notional)
            for order_id, symbol, side, remaining, price, filled, notional in open_orders_of(
                account_id
            )
        ]

    return open_orders

"""A trader's own risk controls, as the order engine applies them to the account now: its trading
state and why, the limits that apply, how much of each is used, the halts and restrictions in
force, and its recent refusals in words (`GET /v1/account/risk`, the console's market page)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rampart.kernel.clock import utc
from rampart.risk.db import RiskEventRow
from rampart.risk.domain import MarginMode, count_day_trades
from rampart.risk.gate import RiskGate

RECENT_REFUSALS = 10


def _use(used: Decimal | int, limit: Decimal | int) -> dict[str, str]:
    return {"used": _fmt(used), "limit": _fmt(limit), "left": _fmt(max(limit - used, 0))}


def _fmt(value: Decimal | int) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.2f}"


def account_risk(gate: RiskGate, session: Session, account_id: str) -> dict[str, Any]:
    """The account's controls and their use (see the module doc)."""
    state, reason = gate.service.state_of(account_id)
    limits = gate.book.limits_for(account_id)
    controls = gate.book.controls
    config = gate.pipeline.config
    snapshot = gate.usage(account_id)
    usage: dict[str, Any] = {}
    if snapshot is not None:
        loss = max(-(snapshot.realised_pnl_today + snapshot.unrealised_pnl), Decimal(0))
        day_trades = count_day_trades(
            snapshot.day_trade_dates, snapshot.today, config.pdt_business_days, config.holidays
        )
        usage = {
            "daily_loss": _use(loss, limits.daily_loss_limit),
            "gross_exposure": _use(snapshot.gross_exposure, limits.max_gross_exposure),
            "orders_today": _use(snapshot.orders_today, limits.max_orders_per_day),
            "trades_today": _use(snapshot.trades_today, limits.max_trades_per_day),
            "order_rate": _use(
                gate.orders_in_last_second(account_id), limits.max_orders_per_second
            ),
            "intraday_margin": _use(snapshot.margin_requirement, snapshot.equity),
            "day_trades": {
                "used": str(day_trades),
                "business_days": config.pdt_business_days,
                # Only the legacy pattern-day-trader rule limits their number.
                "limit": str(config.pdt_day_trades)
                if config.margin_mode is MarginMode.LEGACY_PDT
                else None,
            },
            "buying_power": _fmt(snapshot.buying_power),
        }
    held = set(snapshot.holdings) if snapshot is not None else set()
    refusals = session.scalars(
        select(RiskEventRow)
        .where(RiskEventRow.account_id == account_id, RiskEventRow.kind == "rejection")
        .order_by(RiskEventRow.occurred_at.desc(), RiskEventRow.id.desc())
        .limit(RECENT_REFUSALS)
    )
    return {
        "state": state.value,
        "reason": reason,
        "limits": limits.as_strings(),
        "usage": usage,
        "halts": {
            "market": controls.market_halted,
            "account": account_id in controls.halted_accounts,
            "symbols": sorted(controls.halted_symbols),
            "restricted_symbols": sorted(controls.restricted_symbols),
            # Those of the above this account holds or has orders in.
            "affecting_you": sorted((controls.halted_symbols | controls.restricted_symbols) & held),
        },
        "recent_refusals": [
            {
                "at": utc(r.occurred_at).isoformat(),
                "code": r.code,
                "symbol": r.symbol,
                "reason": r.detail,
            }
            for r in refusals
        ],
    }

"""Pre-trade risk pipeline latency, in process.

`RiskPipeline.evaluate` for an order that passes every check (authorisation, halts, buying power,
size, position, gross exposure, collar, duplicate, throttle, self-trade, intraday margin, Reg SHO,
daily limits, erroneous orders over time, repeated executions), timed one call at a time with
`perf_counter_ns`. Baseline: a call of an empty function with the same arguments, timed the same
way in the same loop, so the timer's own cost and the machine's load show in both.

The account holds positions in 20 symbols and 40 open orders; each order is distinct (no
duplicate), arrives 5 ms after the previous one (under the throttle) and the clock moves so the
activity windows stay realistic.
"""

from __future__ import annotations

import gc
import statistics
import time
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
    RiskPipeline,
    Side,
    TradingControls,
    summarise_holdings,
)

D = Decimal
N = 200_000
WARMUP = 20_000


def _inputs() -> tuple[RiskPipeline, list[OrderRequest], AccountSnapshot, InstrumentSnapshot,
                       RiskLimits, TradingControls]:  # fmt: skip
    config = RiskConfig()
    pipeline = RiskPipeline(config)
    symbols = [f"SYM{n}" for n in range(20)]
    positions = [PositionFact(s, D(100), D(50)) for s in symbols]
    open_orders = [OpenOrderFact(s, Side.BUY, D(10), D(45)) for s in symbols] + [
        OpenOrderFact(s, Side.SELL, D(10), D(55)) for s in symbols
    ]
    holdings, gross, net, requirement = summarise_holdings(positions, open_orders, config)
    cash = D(10_000_000)
    account = AccountSnapshot(
        account_id="acct-bench",
        status=AccountStatus.ACTIVE,
        email_verified=True,
        mfa_enrolled=True,
        cash=cash,
        reserved=D(20_000),
        equity=cash + net,
        gross_exposure=gross,
        margin_requirement=requirement,
        realised_pnl_today=D(-100),
        unrealised_pnl=D(50),
        orders_today=10,
        trades_today=5,
        holdings=holdings,
        locates={"SYM0": D(1000)},
    )
    instrument = InstrumentSnapshot("SYM0", InstrumentStatus.ACTIVE, D(50))
    limits = RiskLimits(
        max_order_quantity=D(100_000),
        max_order_notional=D(5_000_000),
        max_position_quantity=D(10_000_000),
        max_gross_exposure=D(10_000_000_000),
        daily_loss_limit=D(50_000),
        max_orders_per_day=10_000_000,
        max_trades_per_day=10_000_000,
        max_orders_per_second=1_000,
        max_window_notional=D(10_000_000_000),
        max_collar_strikes=5,
        max_executions_in_window=200,
    )
    controls = TradingControls(
        halted_symbols=frozenset({"HALTED1", "HALTED2"}),
        restricted_symbols=frozenset({"RESTRICTED"}),
    )
    # 1000 distinct orders (quantity varies), cycled: 1000 x 5 ms = 5 s > the duplicate window.
    orders = [
        OrderRequest(
            account_id="acct-bench",
            symbol="SYM0",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            quantity=D(1 + n),
            limit_price=D("50.10"),
            permissions=frozenset({"order:place", "order:cancel"}),
            actor="apikey:bench",
        )
        for n in range(1000)
    ]
    return pipeline, orders, account, instrument, limits, controls


def _percentile(values: list[int], q: float) -> float:
    return float(values[min(len(values) - 1, int(len(values) * q))])


def run() -> list[dict[str, Any]]:
    pipeline, orders, account, instrument, limits, controls = _inputs()
    evaluate = pipeline.evaluate

    def empty(*_args: object) -> None:
        return None

    timer = time.perf_counter_ns
    step = 5_000_000  # 5 ms between orders
    now = 1_700_000_000 * 1_000_000_000
    pipe: list[int] = []
    base: list[int] = []
    gc.collect()
    gc.disable()
    try:
        for n in range(N + WARMUP):
            order = orders[n % 1000]
            now += step
            t0 = timer()
            decision = evaluate(order, account, instrument, limits, controls, now)
            t1 = timer()
            empty(order, account, instrument, limits, controls, now)
            t2 = timer()
            if not decision.accepted:
                raise RuntimeError(f"bench order refused: {decision.code} {decision.detail}")
            if n >= WARMUP:
                pipe.append(t1 - t0)
                base.append(t2 - t1)
    finally:
        gc.enable()
    pipe.sort()
    base.sort()
    rows: list[dict[str, Any]] = []
    for label, q in (("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999)):
        rows.append(
            {
                "name": f"risk pipeline {label}, order passing all {len(pipeline.check_names)} "
                "checks",
                "value": _percentile(pipe, q) / 1000,
                "unit": "µs",
                "baseline": round(_percentile(base, q) / 1000, 3),
                "note": "baseline: empty function call, same args, same loop",
            }
        )
    rows.append(
        {
            "name": "risk pipeline mean",
            "value": statistics.fmean(pipe) / 1000,
            "unit": "µs",
            "baseline": round(statistics.fmean(base) / 1000, 3),
            "note": f"{N:,} orders, GC off during timing",
        }
    )
    return rows

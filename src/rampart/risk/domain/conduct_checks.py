"""Checks 5 and 9: duplicate orders, the message throttle, self-trade prevention, and erroneous
orders over time (MiFID II RTS 6): collar strikes, size over a window, repeated executions."""

from __future__ import annotations

from rampart.risk.domain.decision import Decision, reject
from rampart.risk.domain.evaluation import Evaluation
from rampart.risk.domain.limits import RiskConfig, RiskLimits
from rampart.risk.domain.snapshots import AccountSnapshot, InstrumentSnapshot, OrderRequest
from rampart.risk.domain.states import TradingControls, TradingState
from rampart.risk.domain.vocabulary import NS_PER_SECOND, RejectCode, Side

_BUY = Side.BUY
_STATE_HALTED = TradingState.HALTED


class ConductChecks:
    """What the account did moments ago, read from its activity windows."""

    __slots__ = ("_duplicate_window_ns", "config")

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self._duplicate_window_ns = config.duplicate_window_ns

    def duplicate(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if o.replaces is not None:
            return None
        # Expired keys are pruned when orders are recorded; the time comparison here makes a
        # stale entry harmless.
        seen = ev.activity.last_seen.get(
            (o.symbol, o.side, o.quantity, o.limit_price, o.stop_price)
        )
        if seen is not None and ev.now_ns - seen < self._duplicate_window_ns:
            return reject(
                RejectCode.DUPLICATE_ORDER,
                "an identical order was accepted moments ago; send it again after "
                f"{self._duplicate_window_ns / NS_PER_SECOND:g} s if you mean it",
            )
        return None

    def throttle(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if ev.activity.orders_in_last_second(ev.now_ns) >= lim.max_orders_per_second:
            return reject(
                RejectCode.ORDER_RATE,
                f"more than {lim.max_orders_per_second} order messages in one second",
            )
        return None

    def self_trade(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        h = ev.holding
        price = o.limit_price
        if o.side is _BUY:
            crosses = h.open_market_sell or (
                h.lowest_open_sell is not None and (price is None or price >= h.lowest_open_sell)
            )
        else:
            crosses = h.open_market_buy or (
                h.highest_open_buy is not None and (price is None or price <= h.highest_open_buy)
            )
        if crosses:
            return reject(
                RejectCode.SELF_TRADE, "the order would trade against your own resting order"
            )
        return None

    def erroneous_orders(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        window = self.config.erroneous_window_ns
        strikes = ev.activity.collar_strikes_in_window(ev.now_ns, window)
        if strikes >= lim.max_collar_strikes:
            return reject(
                RejectCode.ERRONEOUS_ORDERS,
                f"{strikes} orders outside the price collar in {window // NS_PER_SECOND} s: "
                "orders are refused until the window clears",
            )
        if ev.reducing:
            return None
        total = ev.activity.notional_in_window(ev.now_ns, window) + ev.notional
        if total > lim.max_window_notional:
            return reject(
                RejectCode.WINDOW_NOTIONAL,
                f"{total:.2f} of orders within {window // NS_PER_SECOND} s is over the limit "
                f"of {lim.max_window_notional}",
            )
        return None

    def repeated_execution(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        window = self.config.execution_window_ns
        executions = ev.activity.executions_in_window(o.symbol, ev.now_ns, window)
        if executions >= lim.max_executions_in_window:
            return reject(
                RejectCode.REPEATED_EXECUTION,
                f"{executions} executions in {o.symbol} within {window // NS_PER_SECOND} s: "
                "the account is locked until a person re-enables it",
                escalate=_STATE_HALTED,
            )
        return None

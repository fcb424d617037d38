"""Checks 3, 6 and 8: buying power, order size, position, gross exposure, margin, and the daily
loss and activity limits. An order that reduces exposure is never refused by a limit."""

from __future__ import annotations

from rampart.risk.domain.business_days import count_day_trades
from rampart.risk.domain.decision import Decision, reject
from rampart.risk.domain.evaluation import Evaluation, estimated_fee
from rampart.risk.domain.limits import RiskConfig, RiskLimits
from rampart.risk.domain.snapshots import AccountSnapshot, InstrumentSnapshot, OrderRequest
from rampart.risk.domain.states import TradingControls, TradingState
from rampart.risk.domain.vocabulary import ONE, ZERO, RejectCode, Side

_BUY = Side.BUY
_SELL = Side.SELL
_STATE_REDUCING = TradingState.REDUCING


class LimitChecks:
    """The account's limits and margin (the configured margin mode picks `margin_intraday` or
    `margin_legacy_pdt`)."""

    __slots__ = ("config",)

    def __init__(self, config: RiskConfig) -> None:
        self.config = config

    def buying_power(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if ev.reducing or o.side is _SELL:
            # A long sale needs no cash (its fee comes out of the proceeds); an uncovered one
            # is refused by the Regulation SHO check.
            return None
        config = self.config
        margin = ONE if o.side is _BUY else config.short_initial_margin
        cost = (ev.notional - ev.replaced) * margin + estimated_fee(ev.notional, config)
        if o.replaces is not None:
            cost -= estimated_fee(ev.replaced, config)
        available = a.cash - a.reserved
        if cost > available:
            return reject(
                RejectCode.INSUFFICIENT_BUYING_POWER,
                f"the order needs {cost:.2f} of buying power; {available:.2f} is available",
            )
        return None

    def order_size(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if ev.reducing:
            return None
        if o.quantity > lim.max_order_quantity:
            return reject(
                RejectCode.MAX_ORDER_QUANTITY,
                f"the quantity of {o.quantity} exceeds your order quantity limit of "
                f"{lim.max_order_quantity} by {o.quantity - lim.max_order_quantity}",
            )
        if ev.notional > lim.max_order_notional:
            return reject(
                RejectCode.MAX_ORDER_NOTIONAL,
                f"the order's value of {ev.notional:.2f} exceeds your {lim.max_order_notional:.2f}"
                f" order value limit by {ev.notional - lim.max_order_notional:.2f}",
            )
        return None

    def position(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if ev.reducing:
            return None
        h = ev.holding
        replaced = o.replaces.quantity if o.replaces is not None else ZERO
        if o.side is _BUY:
            worst = h.quantity + h.open_buy_quantity + o.quantity - replaced
        else:
            worst = -(h.quantity - h.open_sell_quantity - o.quantity + replaced)
        if worst > lim.max_position_quantity:
            return reject(
                RejectCode.MAX_POSITION,
                f"your position in {o.symbol} could reach {worst}, exceeding your position "
                f"limit of {lim.max_position_quantity} by {worst - lim.max_position_quantity}",
            )
        return None

    def gross_exposure(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if ev.reducing:
            return None
        exposure = a.gross_exposure + ev.notional - ev.replaced
        if exposure > lim.max_gross_exposure:
            return reject(
                RejectCode.MAX_GROSS_EXPOSURE,
                f"gross exposure across your bots would reach {exposure:.2f}, exceeding your "
                f"{lim.max_gross_exposure:.2f} gross exposure limit by "
                f"{exposure - lim.max_gross_exposure:.2f}",
                escalate=_STATE_REDUCING,
            )
        return None

    def margin_intraday(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if ev.reducing:
            return None
        config = self.config
        rate = config.long_margin_rate if o.side is _BUY else config.short_margin_rate
        requirement = a.margin_requirement + (ev.notional - ev.replaced) * rate
        if requirement > a.equity:
            return reject(
                RejectCode.INTRADAY_MARGIN,
                f"the intraday margin requirement would be {requirement:.2f} against equity "
                f"of {a.equity:.2f}",
            )
        return None

    def margin_legacy_pdt(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if ev.reducing:
            return None
        config = self.config
        if a.equity >= config.pdt_min_equity or not a.day_trade_dates:
            return None
        trades = count_day_trades(
            a.day_trade_dates, a.today, config.pdt_business_days, config.holidays
        )
        if trades >= config.pdt_day_trades:
            return reject(
                RejectCode.PATTERN_DAY_TRADER,
                f"{trades} day trades in {config.pdt_business_days} business days with equity "
                f"under {config.pdt_min_equity}: only closing orders are accepted",
            )
        return None

    def daily_limits(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if ev.reducing:
            return None
        loss = -(a.realised_pnl_today + a.unrealised_pnl)
        if loss > lim.daily_loss_limit:
            return reject(
                RejectCode.DAILY_LOSS_LIMIT,
                f"today's loss of {loss:.2f} exceeds your {lim.daily_loss_limit:.2f} daily loss "
                f"limit by {loss - lim.daily_loss_limit:.2f}: only reducing orders pass",
                escalate=_STATE_REDUCING,
            )
        if o.replaces is None and a.orders_today >= lim.max_orders_per_day:
            return reject(
                RejectCode.DAILY_ORDER_LIMIT,
                f"the limit of {lim.max_orders_per_day} orders a day is reached",
                escalate=_STATE_REDUCING,
            )
        if a.trades_today >= lim.max_trades_per_day:
            return reject(
                RejectCode.DAILY_TRADE_LIMIT,
                f"the limit of {lim.max_trades_per_day} trades a day is reached",
                escalate=_STATE_REDUCING,
            )
        return None

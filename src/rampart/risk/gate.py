"""The risk gate: the pre-trade check the order engine calls for every new and modified order.

`RiskGate.check(order, context)` implements the order engine's `PreTradeCheck` protocol, declared
with its typed `PreTradeContext` in `rampart.risk.ports` (risk sits below trading and never imports
it; trading imports the seam from there). It turns the engine's order and context into the
pipeline's snapshots, runs `RiskPipeline`, and returns `None` to accept or the stable reject code.

No I/O happens per order. What the engine's context does not carry (the account's other
positions, open orders, today's P&L and activity, identity flags) is kept per account in memory,
loaded through ports at most once per `facts_ttl` / `profile_ttl` seconds, and kept exact between
loads by the engine's reports (`order_changed`): every accept, fill, modify, cancel, expiry and
trigger is applied to the account's view (`rampart.risk.view`) as the engine makes it, so the next
decision sees the account as it is now. The open orders come from the order engine's memory and
today's activity is re-read less often (`LedgerAccountFacts`), so a load costs what the account
holds, not what it did today.

Refusals are queued for `RiskWorker`, which writes them as risk events and audit entries in its
own transaction shortly after (the engine has already recorded the order as `rejected`, with its
code, in the order's own audited transaction). Escalations (REDUCING after a breached limit, the
repeated-execution lock) reach the in-memory controls at once and the database via the worker.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from rampart.kernel.clock import Clock
from rampart.platform.db import Database
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.risk.bands import ReferencePrices
from rampart.risk.controls import ControlBook
from rampart.risk.domain import (
    ZERO,
    AccountSnapshot,
    AccountStatus,
    Decision,
    HaltScope,
    Holding,
    InstrumentSnapshot,
    OrderRequest,
    OrderType,
    RejectCode,
    ReplacedOrder,
    RiskPipeline,
    Side,
    TradingState,
)
from rampart.risk.ports import (
    AccountFacts,
    AccountFactsSource,
    CheckedOrder,
    PreTradeContext,
    TraderProfile,
    TraderProfiles,
)
from rampart.risk.service import RejectionRecord, RiskService
from rampart.risk.view import AccountView
from rampart.venue.domain import Instrument

log = get_logger(__name__)

#: Refusals waiting for the worker; past this the oldest are dropped (and counted): the engine's
#: own audited `rejected` order remains the record of each.
MAX_PENDING_RECORDS = 10_000


@dataclass(slots=True)
class _Account:
    """The gate's view of one account between loads."""

    view: AccountView
    profile: TraderProfile | None = None
    profile_loaded: float = -1e18
    facts: AccountFacts | None = None
    facts_loaded: float = -1e18
    day: date | None = None
    located: dict[str, Decimal] = field(default_factory=dict)
    locates: dict[str, Decimal] = field(default_factory=dict)
    orders_today: int = 0
    trades_today: int = 0
    #: Running figures of the day, for what the facts source does not report.
    short_sold: dict[str, Decimal] = field(default_factory=dict)
    realised_baseline: Decimal = ZERO
    realised_today: Decimal = ZERO
    #: Day trades before today as last read (one date per day trade), and the sides each symbol
    #: traded on today: as read, joined with the fills seen here since. Today's day trades are
    #: the symbols traded on both sides.
    day_trades_read: tuple[date, ...] = ()
    sides_today: dict[str, set[bool]] = field(default_factory=dict)

    def apply_facts(self, facts: AccountFacts, located: dict[str, Decimal], today: date) -> None:
        """Take in a load of the account's facts, starting the day's counts on a new day."""
        self.view.load(facts.positions, facts.cost_basis, facts.open_orders)
        if self.day != today:
            # A new trading day: the running counts start again from zero. A source without
            # today's realised P&L has it measured from the ledger's total as it stands now.
            self.orders_today = self.trades_today = 0
            self.short_sold = {}
            self.sides_today = {}
            self.day_trades_read = ()
            self.realised_baseline = facts.realised_pnl_total
        self.facts = facts
        self.day = today
        if facts.realised_pnl_today is not None:
            # Between reads of today's activity, today's realised P&L is the ledger's running
            # total less what it was at the start of the day: exact, from every reload.
            self.realised_baseline = facts.realised_pnl_total - facts.realised_pnl_today
        self.realised_today = facts.realised_pnl_total - self.realised_baseline
        if facts.day_trade_dates is not None:
            self.day_trades_read = tuple(facts.day_trade_dates)
        if facts.sides_today is not None:
            for symbol, sides in facts.sides_today.items():
                self.sides_today.setdefault(symbol, set()).update(sides)
        if facts.orders_today is not None:
            self.orders_today = facts.orders_today
        if facts.trades_today is not None:
            self.trades_today = facts.trades_today
        if facts.short_sold_today is not None:
            self.short_sold = dict(facts.short_sold_today)
        self.located = located
        self.locates = self.locates_left()

    def day_trade_dates(self) -> tuple[date, ...]:
        """Earlier days as read; today, the symbols traded on both sides in what was read joined
        with what was seen since (at least as many as the read counted)."""
        today = self.day
        earlier = tuple(d for d in self.day_trades_read if d != today)
        if today is None:
            return earlier
        both = sum(1 for sides in self.sides_today.values() if len(sides) == 2)
        read_today = len(self.day_trades_read) - len(earlier)
        return earlier + (today,) * max(both, read_today)

    def locates_left(self) -> dict[str, Decimal]:
        return {
            symbol: quantity - self.short_sold.get(symbol, ZERO)
            for symbol, quantity in self.located.items()
        }


class RiskGate:
    def __init__(
        self,
        pipeline: RiskPipeline,
        service: RiskService,
        db: Database,
        clock: Clock,
        *,
        profiles: TraderProfiles,
        facts: AccountFactsSource,
        facts_ttl: float = 1.0,
        profile_ttl: float = 10.0,
        full: bool = True,
    ) -> None:
        self.pipeline = pipeline
        self.service = service
        self.book: ControlBook = service.book
        self._db = db
        self._clock = clock
        self._profiles = profiles
        self._facts = facts
        self._facts_ttl = facts_ttl
        self._profile_ttl = profile_ttl
        #: False: only the controls run (halts, states, restricted list), on the engine's
        #: context alone, without reading the account's other facts.
        self.full = full
        self._accounts: dict[str, _Account] = {}
        self._lock = pipeline.activity.lock
        self._pending: deque[RejectionRecord] = deque()
        self._pending_lock = threading.Lock()
        # Held from taking queued refusals to committing them: whoever holds it next finds every
        # refusal queued before in the database, not half-way in another thread's transaction.
        self.writing = threading.Lock()
        self.dropped_records = 0
        self.wake = threading.Event()
        #: True while the engine runs a batch's commands: no reload then (see `before_batch`).
        self._in_batch = False
        #: Moving reference prices for the price bands (`rampart.risk.bands`).
        self.references = ReferencePrices()

    # --- the engine's seam ---------------------------------------------------------------------
    def before_batch(self, accounts: Iterable[str]) -> None:
        """Reload, now, what is stale of the batch's accounts, and nothing during the batch.

        A reload reads committed rows. Inside a batch, the orders the batch already accepted
        exist only in the engine's memory, so a reload there would drop them from the counts
        this gate keeps (orders today, short sales against locates): between batches the
        database and the engine agree.

        The controls (halts, states, limits, bands, the restricted list) are reloaded too when
        their stored version moved: a change made by another process (the CLI, another server)
        applies to this batch's orders."""
        self._in_batch = False
        try:
            with self._db.read() as session:
                if self.service.controls_version(session) != self.book.version:
                    self.service.load(session)
        except Exception:
            # The controls in memory stand (the worker retries); the orders are still checked.
            log.error("risk controls version check failed", exc_info=True)
        for account_id in accounts:
            try:
                self._load(account_id)
            except Exception:
                # Not kept stale: the order's own check loads it again, or refuses (fail closed).
                log.error("risk facts reload failed", exc_info=True)
                self._accounts.pop(account_id, None)
        self._in_batch = True

    def after_batch(self) -> None:
        self._in_batch = False

    def invalidate(self) -> None:
        """Another writer traded on the engine's venue: between its batches this process counted
        only its own orders, so every view is read afresh, today's activity included."""
        for account_id in list(self._accounts):
            self.forget(account_id)

    def check(self, order: CheckedOrder, context: PreTradeContext) -> str | None:
        """`PreTradeCheck.check`: None to accept, a stable reject code to refuse."""
        decision = self.decide(order, context)
        return None if decision.accepted else str(decision.code)

    def decide(self, order: CheckedOrder, context: PreTradeContext) -> Decision:
        try:
            request = self._request(order, context)
            instrument = self._banded(instrument_snapshot(context.instrument, context.last_price))
            account = self.account_snapshot(request, context)
        except Exception as exc:
            log.error("risk snapshot failed", exc_info=True)
            return Decision(
                False,
                RejectCode.CHECK_ERROR,
                f"the risk snapshot could not be built ({type(exc).__name__})",
                "prepare",
            )
        return self.evaluate(request, account, instrument)

    def evaluate(
        self, request: OrderRequest, account: AccountSnapshot, instrument: InstrumentSnapshot
    ) -> Decision:
        """Run the pipeline on prepared snapshots, then book-keep and record the outcome."""
        with self._lock:
            decision = self.pipeline.evaluate(
                request,
                account,
                instrument,
                self.book.limits_for(request.account_id),
                self.book.controls,
                self._clock.time_ns(),
            )
            if decision.accepted:
                self._note_accepted(request, account)
        if not decision.accepted:
            self._refused(request, decision)
        return decision

    def _banded(self, instrument: InstrumentSnapshot) -> InstrumentSnapshot:
        """The instrument with its price band in force, around the moving reference price."""
        band = self.book.band_for(instrument.symbol)
        last = instrument.reference_price
        if band is None or last is None:
            return instrument
        percent, window = band
        window_ns = window * 1_000_000_000
        now = self._clock.time_ns()
        with self._lock:
            self.references.observe(instrument.symbol, last, now, window_ns)
            reference = self.references.reference(instrument.symbol, now, window_ns)
        if reference is None:
            return instrument
        width = reference * percent / 100
        return replace(
            instrument,
            band_low=reference - width,
            band_high=reference + width,
            band_reference=reference,
            band_window_seconds=window,
        )

    def record_execution(
        self,
        account_id: str,
        symbol: str,
        side: str | None = None,
        quantity: Decimal | None = None,
    ) -> None:
        """Called by the engine for each fill, after its batch committed: feeds the
        repeated-execution throttle (the position, open orders and day counts were already
        brought up to date by `order_changed` as the fill happened)."""
        with self._lock:
            self.pipeline.activity.record_execution(account_id, symbol, self._clock.time_ns())

    def order_changed(self, order: CheckedOrder) -> None:
        """The engine's report of a change to one of its orders, made as the change is made
        (`OrderEngine.order_listeners`): applied to the account's view at once."""
        state = self._accounts.get(order.user_id)
        if state is None or state.facts is None:
            return  # not viewed here: its first load reads it whole
        side = _SIDES[str(order.side)]
        with self._lock:
            try:
                fill = state.view.order_changed(
                    order.id,
                    order.symbol,
                    side is Side.BUY,
                    order.quantity - order.filled_quantity,
                    order.limit_price,
                    order.is_open,
                    order.filled_quantity,
                    order.filled_notional,
                )
            except Exception:
                # Never raised into the engine's batch: the view is dropped and read again.
                log.error("risk view update failed", exc_info=True)
                self._accounts.pop(order.user_id, None)
                self._forget_facts(order.user_id)
                return
            if fill is not None:
                band = self.book.band_for(fill.symbol)
                if band is not None:
                    self.references.observe(
                        fill.symbol, fill.price, self._clock.time_ns(), band[1] * 1_000_000_000
                    )
                state.trades_today += 1
                state.realised_today += fill.realised
                state.sides_today.setdefault(fill.symbol, set()).add(fill.buy)

    def usage(self, account_id: str) -> AccountSnapshot | None:
        """The account as the next decision would see it (for the trader's own risk page), or
        None for an account with no trading record. Never changes the gate's views: an account
        not viewed yet is read aside, and its day re-read by the gate's own first load."""
        request = OrderRequest(account_id, "", Side.BUY, OrderType.LIMIT, ZERO)
        with self._lock:
            state = self._accounts.get(account_id)
            if state is not None and state.facts is not None:
                return self._snapshot(request, state, None)
        state = _Account(AccountView(self.pipeline.config))
        today = self._clock.now().date()
        try:
            with self._db.read() as session:
                state.profile = self._profiles.trader_profile(session, account_id)
                facts = self._facts.account_facts(session, account_id, today)
                located = self.service.located(session, account_id, today)
        finally:
            self._forget_facts(account_id)
        state.apply_facts(facts, located, today)
        return self._snapshot(request, state, None)

    def orders_in_last_second(self, account_id: str) -> int:
        with self._lock:
            return self.pipeline.activity.of(account_id).orders_in_last_second(
                self._clock.time_ns()
            )

    # --- snapshots -----------------------------------------------------------------------------
    def _request(self, order: CheckedOrder, context: PreTradeContext) -> OrderRequest:
        replaces = None
        if context.action == "modify":
            # Without the replaced order's figures the whole new order is counted: conservative.
            replaces = ReplacedOrder(context.replaced_quantity or ZERO, context.replaced_price)
        return OrderRequest(
            account_id=order.user_id,
            symbol=order.symbol,
            side=_SIDES[str(order.side)],
            order_type=_TYPES[str(order.type)],
            quantity=order.quantity - order.filled_quantity,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            # The sender's own, always: an HTTP route's principal's, or what an in-process
            # caller states. Nothing is granted here for a context that lacks them.
            permissions=context.permissions,
            actor=context.actor,
            credential_id=context.credential_id,
            replaces=replaces,
        )

    def account_snapshot(
        self, request: OrderRequest, context: PreTradeContext | None = None
    ) -> AccountSnapshot:
        """The account as the pipeline sees it: cached facts, overlaid with the engine's live
        cash, reservations and position in the order's symbol when a context is given."""
        if not self.full and context is not None:
            return _context_only(request, context)
        return self._snapshot(request, self._load(request.account_id), context)

    def _snapshot(
        self, request: OrderRequest, state: _Account, context: PreTradeContext | None
    ) -> AccountSnapshot:
        # No profile: no such account, whose orders are refused.
        profile = state.profile or _NO_PROFILE
        facts = state.facts
        assert facts is not None
        cash = facts.cash if context is None else context.cash_balance
        reserved = facts.reserved if context is None else context.cash_reserved
        view = state.view
        holdings: dict[str, Holding] = view.holdings
        if context is not None:
            current = holdings.get(request.symbol) or Holding()
            if current.quantity != context.position_quantity:
                holdings = {
                    **holdings,
                    request.symbol: replace(current, quantity=context.position_quantity),
                }
        return AccountSnapshot(
            account_id=request.account_id,
            status=profile.status,
            email_verified=profile.email_verified,
            mfa_enrolled=profile.mfa_enrolled,
            recovery_hold=profile.recovery_hold,
            cash=cash,
            reserved=reserved,
            equity=cash + view.net_value,
            gross_exposure=view.gross,
            margin_requirement=view.requirement,
            realised_pnl_today=state.realised_today,
            unrealised_pnl=view.unrealised,
            orders_today=state.orders_today,
            trades_today=state.trades_today,
            holdings=holdings,
            day_trade_dates=state.day_trade_dates(),
            locates=state.locates,
            today=state.day or self._clock.now().date(),
        )

    def _load(self, account_id: str) -> _Account:
        state = self._accounts.get(account_id)
        fresh_in_batch = False
        if state is None:
            state = self._accounts[account_id] = _Account(AccountView(self.pipeline.config))
            # A fresh view has no running figures: it must start from a read of the day.
            self._forget_facts(account_id)
            fresh_in_batch = self._in_batch
        elif self._in_batch:
            return state
        now = time.monotonic()
        today = self._clock.now().date()
        stale_profile = now - state.profile_loaded > self._profile_ttl
        stale_facts = now - state.facts_loaded > self._facts_ttl or state.day != today
        if not (stale_profile or stale_facts):
            return state
        try:
            with self._db.read() as session:
                if stale_profile:
                    state.profile = self._profiles.trader_profile(session, account_id)
                    state.profile_loaded = now
                if stale_facts:
                    facts = self._facts.account_facts(session, account_id, today)
                    located = self.service.located(session, account_id, today)
                    state.apply_facts(facts, located, today)
                    # Read inside a batch, the ledger lacks the batch's fills that the engine's
                    # open orders already show: read again before the next batch.
                    state.facts_loaded = -1e18 if fresh_in_batch else now
        except Exception:
            # Half a load must not stand: the source may count the day's activity as read while
            # this view never took it in, and would then start the day's counts from zero.
            self._accounts.pop(account_id, None)
            self._forget_facts(account_id)
            raise
        return state

    @staticmethod
    def _day_trade_dates(state: _Account) -> tuple[date, ...]:
        return state.day_trade_dates()

    def forget(self, account_id: str) -> None:
        """Drop the cached view of an account (the next order reloads all of it)."""
        self._accounts.pop(account_id, None)
        self._forget_facts(account_id)

    def _forget_facts(self, account_id: str) -> None:
        forget = getattr(self._facts, "forget", None)
        if forget is not None:
            forget(account_id)

    # --- bookkeeping ---------------------------------------------------------------------------
    def _note_accepted(self, request: OrderRequest, account: AccountSnapshot) -> None:
        """Count what the engine's reports do not carry: orders today, short sales against the
        day's locates. (The order itself reaches the view when the engine records it.)"""
        state = self._accounts.get(request.account_id)
        if state is None:
            return
        if request.replaces is None:
            state.orders_today += 1
        if request.side is Side.SELL_SHORT:
            quantity = request.quantity - (request.replaces.quantity if request.replaces else ZERO)
            state.short_sold[request.symbol] = state.short_sold.get(request.symbol, ZERO) + quantity
            state.locates = state.locates_left()

    def _refused(self, request: OrderRequest, decision: Decision) -> None:
        escalate = decision.escalate
        if escalate is TradingState.REDUCING:
            self.book.set_state(
                request.account_id,
                TradingState.REDUCING,
                pin=True,
                reason=f"automatic after {decision.code}: {decision.detail}",
            )
        elif escalate is TradingState.HALTED:
            self.book.add_halt(HaltScope.ACCOUNT, request.account_id)
        record = RejectionRecord(
            occurred_at=self._clock.now(),
            account_id=request.account_id,
            symbol=request.symbol,
            code=str(decision.code),
            detail=decision.detail,
            check=decision.check,
            actor=request.actor,
            order={
                "side": request.side.value,
                "type": request.order_type.value,
                "quantity": str(request.quantity),
                "limit_price": _s(request.limit_price),
                "stop_price": _s(request.stop_price),
                "modify": request.replaces is not None,
            },
            escalate=escalate,
        )
        with self._pending_lock:
            if len(self._pending) >= MAX_PENDING_RECORDS:
                self._pending.popleft()
                self.dropped_records += 1
            self._pending.append(record)
        self.wake.set()

    def drain(self, uow: UnitOfWork, max_records: int = 500) -> int:
        """Write queued refusals (and their escalations) into `uow`; returns how many."""
        with self._pending_lock:
            records = [self._pending.popleft() for _ in range(min(max_records, len(self._pending)))]
        if records:
            self.service.record_rejections(uow, records)
        return len(records)


_NO_PROFILE = TraderProfile(AccountStatus.CLOSED, False, False)
_SIDES = {s.value: s for s in Side}
_TYPES = {t.value: t for t in OrderType}


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _max(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


def _min(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    return a if b is None or a <= b else b


def _context_only(request: OrderRequest, context: PreTradeContext) -> AccountSnapshot:
    """The account from the engine's context alone: enough for the controls checks (REDUCING
    needs the position in the order's symbol; open orders in it count as unknown)."""
    cash, reserved = context.cash_balance, context.cash_reserved
    return AccountSnapshot(
        account_id=request.account_id,
        status=AccountStatus.ACTIVE,
        email_verified=True,
        mfa_enrolled=True,
        cash=cash,
        reserved=reserved,
        equity=cash,
        gross_exposure=ZERO,
        margin_requirement=ZERO,
        realised_pnl_today=ZERO,
        unrealised_pnl=ZERO,
        orders_today=0,
        trades_today=0,
        holdings={request.symbol: Holding(quantity=context.position_quantity)},
    )


def instrument_snapshot(
    instrument: Instrument, reference_price: Decimal | None
) -> InstrumentSnapshot:
    """The engine's instrument as the pipeline sees it; the collar is centred on the last trade
    price (the instrument's reference before any trade). Instruments carry no collar of their
    own: the pipeline's default applies."""
    return InstrumentSnapshot(
        symbol=instrument.symbol,
        status=instrument.status,
        reference_price=reference_price or instrument.reference_price,
        collar_percent=None,
        threshold_security=instrument.threshold_security,
        easy_to_borrow=instrument.easy_to_borrow,
    )

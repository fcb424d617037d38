"""The order engine: one writer thread that owns the books and group-commits every change.

Request handlers do not write orders. They put a command on the engine's queue and await its
future. The engine thread takes whatever commands are waiting (up to `batch_max`), and for the
whole batch, in ONE database transaction:

1. locks the venue's epoch row (`trading_engine_state`, `SELECT ... FOR UPDATE`; on SQLite the
   `BEGIN IMMEDIATE` write lock) and, if another process has committed since this one last did,
   rebuilds its books from the open orders;
2. locks and loads the cash accounts and positions the commands touch;
3. runs each command in memory: checks (built-in, then `pre_trade_checks`), reservations,
   matching in the venue, fills, journal entries, positions, order transitions;
4. writes orders, fills, journal, balances, positions, audit events and outbox messages;
5. commits (one fsync for the batch), and only then resolves each command's future and publishes
   to streams.

So every order is durable before its response, a crash at any point leaves either all of a batch
or none of it, and commits are grouped: under load one fsync carries tens of orders.

A command's failure is its own (issue #14.1): if a command raises, what it changed in memory is
put back (`rampart.trading.undo`) and its statements, if it ran any, are rolled back to its
savepoint; it is answered with its refusal, or 503 for anything unexpected, and the batch commits
the others, with no rebuild. Only a failure no command can be blamed for (the batch's locks and
loads, its write, the commit) fails the whole batch with 503 and rebuilds the books before the
next one. Amounts are bounded before a command is built (`trading.domain.check_amounts`), so
nothing after that check formats, stores or computes a value it cannot hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, SessionTransaction

from rampart.audit.writer import PreparedEntry, prepare
from rampart.kernel.context import RequestContext
from rampart.kernel.errors import ConflictError, NotFoundError, RampartError, UnavailableError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.ledger.domain import (
    CLEARING_ACCOUNT,
    CashAccount,
    JournalEntry,
    LedgerBatch,
    Position,
    Posting,
    cash_account_id,
    ledger_ceiling,
    short_collateral,
)
from rampart.ledger.service import LedgerService
from rampart.platform.bulk import executemany as _executemany
from rampart.platform.logging import get_logger
from rampart.platform.outbox import OutboxRow
from rampart.platform.uow import UnitOfWork
from rampart.trading.db import EngineStateRow, FillRow, OrderRow
from rampart.trading.domain import (
    OPEN_STATUSES,
    Fill,
    InvalidOrderError,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Reason,
    check_amounts,
    check_instrument_limits,
    check_restricted,
    check_shape,
    fmt,
)
from rampart.trading.ports import PreTradeCheck, PreTradeContext
from rampart.trading.stream import StreamEvent, StreamHub
from rampart.trading.undo import MUTABLE_ORDER_FIELDS, CommandUndo
from rampart.venue.db import InstrumentRow
from rampart.venue.domain import (
    BookSnapshot,
    Instrument,
    MatchingVenue,
    Side,
    TimeInForce,
    VenueOrder,
)
from rampart.venue.service import to_instrument

log = get_logger(__name__)

ORDERS: Table = OrderRow.__table__  # type: ignore[assignment]
FILLS: Table = FillRow.__table__  # type: ignore[assignment]
ENGINE_STATE: Table = EngineStateRow.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]
INSTRUMENTS: Table = InstrumentRow.__table__  # type: ignore[assignment]
ZERO = Decimal(0)
_SYSTEM = RequestContext()
# Built once: run in every batch.
_LOCK_EPOCH = (
    select(ENGINE_STATE.c.epoch).where(ENGINE_STATE.c.venue == bindparam("venue")).with_for_update()
)
_BUMP_EPOCH = (
    update(ENGINE_STATE)
    .where(ENGINE_STATE.c.venue == bindparam("venue_name"))
    .values(epoch=bindparam("new_epoch"), updated_at=bindparam("now"))
)
_INSTRUMENTS_BY_SYMBOL = select(INSTRUMENTS).where(
    INSTRUMENTS.c.symbol.in_(bindparam("symbols", expanding=True))
)


class OrderNotOpenError(ConflictError):
    code = "order-not-open"
    title = "The order is no longer open"


class ClientOrderIdReusedError(ConflictError):
    code = "client-order-id-reused"
    title = "This client_order_id was used for a different order"


class ModifyRejectedError(ConflictError):
    code = "modify-rejected"
    title = "The modification was refused; the order is unchanged"

    def __init__(self, reason: str) -> None:
        super().__init__(f"The modification was refused: {reason}.", reason=reason)
        self.reason = reason


class EngineBusyError(UnavailableError):
    code = "engine-busy"
    title = "The order engine is at capacity; retry shortly"


class EngineStoppedError(UnavailableError):
    code = "engine-stopped"
    title = "The order engine is not running"


class OrderNotFoundError(NotFoundError):
    code = "order-not-found"
    title = "No such order"


class CarriedAudit(Protocol):
    """An audit event the request hands over (`rampart.access.recorder.CarriedDecision`)."""

    event: AuditEvent
    #: The request's context and the time of the event: the entry is written as if appended then.
    context: RequestContext
    ts_ns: int
    #: Set by the engine once the batch holding the entry has committed.
    committed: bool


#: `SqlAuditWriter.write_prepared`: appends prepared entries in the session's transaction.
WritePrepared = Callable[[Session, Sequence[Any]], int]


# --- Commands ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Place:
    user_id: str
    actor: str
    request: OrderRequest
    #: The request that sent it (request id, client IP), for its audit entries.
    context: RequestContext | None = None
    #: Audit entries the command's transaction must write (the request's access decisions).
    carried: tuple[CarriedAudit, ...] = ()
    #: The principal's permissions and credential, for the pre-trade checks (`None`: an
    #: in-process caller that has no principal, such as the CLI or the simulator).
    permissions: frozenset[str] | None = None
    credential_id: str | None = None


@dataclass(frozen=True, slots=True)
class Modify:
    user_id: str
    actor: str
    order_id: str
    quantity: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    context: RequestContext | None = None
    carried: tuple[CarriedAudit, ...] = ()
    permissions: frozenset[str] | None = None
    credential_id: str | None = None

    def __post_init__(self) -> None:
        check_amounts(self.quantity, self.limit_price, self.stop_price)


@dataclass(frozen=True, slots=True)
class Cancel:
    user_id: str
    actor: str
    order_id: str
    context: RequestContext | None = None
    carried: tuple[CarriedAudit, ...] = ()


@dataclass(frozen=True, slots=True)
class CancelAll:
    user_id: str
    actor: str
    symbol: str | None = None
    context: RequestContext | None = None
    carried: tuple[CarriedAudit, ...] = ()


@dataclass(frozen=True, slots=True)
class ExpireDay:
    actor: str = "system"
    context: RequestContext | None = None
    carried: tuple[CarriedAudit, ...] = ()


@dataclass(frozen=True, slots=True)
class CancelOpen:
    """Cancel every open order matching all the filters given (none: every open order), with a
    stable `reason` code: trading halts and cancel-on-disconnect."""

    reason: str
    account_id: str | None = None
    symbol: str | None = None
    actor: str = "system"
    context: RequestContext | None = None
    carried: tuple[CarriedAudit, ...] = ()


Command = Place | Modify | Cancel | CancelAll | CancelOpen | ExpireDay


@dataclass(frozen=True, slots=True)
class PlaceResult:
    order: dict[str, Any]
    #: False when a retry with the same client_order_id found the existing order.
    created: bool


_STOP = object()


@dataclass(frozen=True, slots=True)
class _LoopWaiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


_Waiter = Future[Any] | _LoopWaiter


def _resolve(future: Future[Any] | asyncio.Future[Any], result: Any) -> None:
    if future.done():
        return  # the caller went away (cancelled)
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _resolve_all(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, result in settled:
        _resolve(future, result)


def _settle(outcomes: list[tuple[_Waiter, Any]]) -> None:
    """Hand each waiter its result or exception: one thread-safe call per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for waiter, result in outcomes:
        if isinstance(waiter, _LoopWaiter):
            by_loop.setdefault(waiter.loop, []).append((waiter.future, result))
        else:
            _resolve(waiter, result)
    for loop, settled in by_loop.items():
        # A closed loop has nobody waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve_all, settled)


@dataclass
class _Batch:
    uow: UnitOfWork
    now: datetime
    ledger: LedgerBatch = field(default_factory=LedgerBatch)
    instruments: dict[str, Instrument | None] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    events: list[StreamEvent] = field(default_factory=list)
    symbols: set[str] = field(default_factory=set)
    client_ids: dict[tuple[str, str], Order] = field(default_factory=dict)
    #: Audit entries in the order they happened, written with one `write_prepared`.
    audit: list[PreparedEntry] = field(default_factory=list)
    #: The context of the command being handled (its audit entries carry its request id).
    context: RequestContext = field(default_factory=RequestContext)
    ts_ns: int = 0
    #: (user, symbol, side, quantity) of each fill, for the execution listeners after commit.
    executions: list[tuple[str, str, str, Decimal]] = field(default_factory=list)
    #: Each order's view as last recorded: the answer reuses it unless the order moved on.
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Order events for the unit of work's own audit writer (when the engine has no
    #: `write_audit`), handed to it at write time so that a failed command's can be dropped.
    audit_events: list[AuditEvent] = field(default_factory=list)
    #: What the command being run has changed so far; None between commands.
    undo: CommandUndo | None = None
    #: The savepoint of the command being run, once it has run a statement.
    savepoint: SessionTransaction | None = None
    #: A command failed unexpectedly: the pre-trade checks may have counted it.
    failed: bool = False

    def view(self, order: Order) -> dict[str, Any]:
        view = self.views.get(order.id)
        if view is None or view["version"] != order.version:
            view = order.view()
        return view

    def statement(self) -> None:
        """Called before a command runs a statement: its savepoint, taken on first use, so that
        a command that fails takes its statements (and the row locks they took) back with it.
        Most commands run none (the batch loaded what they touch): they pay no savepoint."""
        if self.undo is not None and self.savepoint is None:
            self.savepoint = self.uow.session.begin_nested()


class OrderEngine:
    """The single writer of orders, fills, reservations and positions in this process."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        ledger: LedgerService,
        hub: StreamHub,
        *,
        venue: MatchingVenue | None = None,
        checks: list[PreTradeCheck] | None = None,
        batch_max: int = 256,
        queue_max: int = 10_000,
        write_audit: WritePrepared | None = None,
        short_initial_margin: Decimal = Decimal("0.50"),
    ) -> None:
        self._uow = uow_factory
        #: Regulation T initial margin on a short sale (`settings.risk.short_initial_margin`):
        #: a short-sale order holds this rate of its value; a short position holds its value
        #: plus this rate of it, marked to the last trade (`rampart.ledger.domain`).
        self.short_initial_margin = short_initial_margin
        #: With it, the batch's audit entries (order transitions and the access decisions the
        #: commands carry) go in with one call, each stamped with its own request's context;
        #: without it, order events go through the unit of work and carried entries are left
        #: to their requests (which then append them on their own).
        self._write_audit = write_audit
        self._ledger = ledger
        self.hub = hub
        self.venue = venue or MatchingVenue()
        #: Pre-trade checks after the built-in ones (the risk engine appends its own).
        self.checks: list[PreTradeCheck] = checks if checks is not None else []
        #: Called with (user_id, symbol, side, quantity) for each fill once its batch has
        #: committed (the risk gate's repeated-execution throttle, trade counts and open-order
        #: view). Must be fast; an exception is logged, never raised.
        self.execution_listeners: list[Callable[[str, str, str, Decimal], None]] = []
        #: Called with each order the moment the engine records a change to it (accepted,
        #: filled, modified, cancelled, expired, triggered, rejected), on the engine thread: the
        #: risk gate keeps its view of open orders and positions exact with it. A failed batch
        #: is followed by a rebuild, which tells the checks (`invalidate`) to read afresh.
        self.order_listeners: list[Callable[[Order], None]] = []
        self._batch_max = batch_max
        self._queue_max = queue_max
        #: Items are one (command, waiter) pair or a list of them (one event-loop tick's worth);
        #: the bound is on commands, kept in `_backlog`.
        self._queue: queue.Queue[Any] = queue.Queue()
        self._backlog = 0
        self._backlog_lock = threading.Lock()
        #: Commands submitted from each event loop during its current tick, handed to the
        #: engine together at the end of the tick (`_hand_over`).
        self._gathering: dict[asyncio.AbstractEventLoop, list[tuple[Command, _Waiter]]] = {}
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._epoch: int | None = None
        self._open: dict[str, Order] = {}
        #: Open orders per (user, symbol), kept with `_open`: the pre-trade context's count
        #: without a scan of every open order per order.
        self._open_count: dict[tuple[str, str], int] = {}
        #: Open orders per user, kept with `_open`: the risk gate reads an account's open orders
        #: from here (`open_orders_of`) instead of paging through them in the database.
        self._open_by_user: dict[str, dict[str, Order]] = {}
        self._stops: dict[str, dict[str, Order]] = {}
        self._pending_sell: dict[tuple[str, str], Decimal] = {}
        #: Symbol -> the users short in it: whose collateral a new last price re-marks.
        self._shorts: dict[str, set[str]] = {}
        self._priority = 0
        self._snapshots: dict[str, BookSnapshot] = {}
        self._quotes: dict[str, tuple[Decimal | None, ...]] = {}
        self.batches = 0
        self.commands = 0

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="order-engine", daemon=True)
        self._thread.start()
        self._ready.wait(30)

    def stop(self, timeout: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join(timeout)
        if not thread.is_alive():
            # A hand-over that raced with the stop: refused rather than left waiting.
            self._refuse_queued()
        log.info(
            "order engine stopped",
            batches=self.batches,
            commands=self.commands,
            mean_batch=round(self.commands / self.batches, 1) if self.batches else 0,
        )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- submitting --------------------------------------------------------------------------
    def submit(self, command: Command) -> Future[Any]:
        """Queue a command; the future resolves after the batch holding it has committed."""
        future: Future[Any] = Future()
        self._put(command, future)
        return future

    async def execute(self, command: Command) -> Any:
        """Submit from async code and await the committed result.

        Both directions are per event-loop tick, not per command: the commands submitted during
        one tick reach the engine as one queue item (one wake-up of the engine thread, so the
        two threads do not trade the GIL per order and the batch grows with the load), and
        each batch's results come back with one thread-safe call per loop.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._admit(1)
        gathering = self._gathering.get(loop)
        if gathering is None:
            gathering = self._gathering[loop] = []
            loop.call_soon(self._hand_over, loop)
        gathering.append((command, _LoopWaiter(loop, future)))
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        items = self._gathering.pop(loop, None)
        if not items:
            return
        if not self.running:
            self._taken(len(items))
            _settle([(waiter, EngineStoppedError()) for _, waiter in items])
            return
        self._queue.put_nowait(items)

    def _put(self, command: Command, waiter: _Waiter) -> None:
        self._admit(1)
        self._queue.put_nowait((command, waiter))

    def _admit(self, count: int) -> None:
        if not self.running:
            raise EngineStoppedError
        with self._backlog_lock:
            if self._backlog + count > self._queue_max:
                # Bounded: under overload callers get a fast 503 instead of unbounded latency.
                raise EngineBusyError
            self._backlog += count

    def _taken(self, count: int) -> None:
        with self._backlog_lock:
            self._backlog -= count

    def call(self, command: Command, timeout: float = 30.0) -> Any:
        """Submit and wait (for threads: CLI, simulator, tests)."""
        return self.submit(command).result(timeout)

    def open_orders_of(
        self, user_id: str
    ) -> list[tuple[str, str, OrderSide, Decimal, Decimal | None, Decimal, Decimal]]:
        """The user's open orders as the engine holds them, including those of the batch being
        processed: (id, symbol, side, remaining quantity, limit price, filled quantity, filled
        notional), oldest first.

        Meant for the pre-trade check, which runs on the engine thread; from another thread it
        is a consistent copy as of one moment (the dict is copied in one step under the GIL)."""
        orders = list(self._open_by_user.get(user_id, {}).values())
        return [
            (o.id, o.symbol, o.side, o.remaining, o.limit_price, o.filled_quantity,
             o.filled_notional)
            for o in orders
        ]  # fmt: skip

    def snapshot(self, symbol: str) -> BookSnapshot | None:
        return self._snapshots.get(symbol)

    # --- the engine thread -------------------------------------------------------------------
    def _warm_up(self) -> None:
        """Rebuild the books before the first command, so quotes and books are there at once."""
        try:
            with self._uow() as uow:
                batch = _Batch(uow, uow.clock.now())
                self._epoch = self._lock_epoch(batch)
                self._snapshots = {s: self.venue.snapshot(s) for s in self.venue.symbols()}
        except Exception as exc:  # noqa: BLE001 - the first batch retries the rebuild
            log.error("order engine warm-up failed", error=type(exc).__name__)
            self._epoch = None
        finally:
            self._ready.set()

    def _run(self) -> None:
        self._warm_up()
        stopping = False
        #: Commands taken from the queue beyond `batch_max`: the next batch starts with them.
        left: list[tuple[Command, _Waiter]] = []
        while not stopping or left:
            batch, left = left, []
            if not batch:
                item = self._queue.get()
                if item is _STOP:
                    break
                batch = list(item) if isinstance(item, list) else [item]
            while not stopping and len(batch) < self._batch_max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                elif isinstance(item, list):
                    batch.extend(item)
                else:
                    batch.append(item)
            batch, left = batch[: self._batch_max], batch[self._batch_max :]
            self._taken(len(batch))
            self._process(batch)
        self._refuse_queued()

    def _refuse_queued(self) -> None:
        """Whatever is still queued at shutdown is refused, never left hanging."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                continue
            items = item if isinstance(item, list) else [item]
            self._taken(len(items))
            _settle([(waiter, EngineStoppedError()) for _, waiter in items])

    def _process(self, items: list[tuple[Command, _Waiter]]) -> None:
        results: list[Any] = []
        carry = self._write_audit is not None
        try:
            with self._uow() as uow:
                batch = _Batch(uow, uow.clock.now(), ts_ns=uow.clock.time_ns())
                epoch = self._lock_epoch(batch)
                accounts = self._prefetch(batch, [c for c, _ in items])
                self._checks_hook("before_batch", accounts)
                try:
                    for command, _ in items:
                        batch.context = command.context or _SYSTEM
                        if carry:
                            # The access check came first: its entry precedes the order's.
                            batch.audit.extend(
                                prepare(c.event, c.context, c.ts_ns) for c in command.carried
                            )
                        results.append(self._run_command(batch, command))
                finally:
                    self._checks_hook("after_batch")
                self._write(batch, epoch)
                uow.commit()
                self._epoch = epoch + 1
        except Exception as exc:
            # Only what no single command can be blamed for gets here (the batch's locks and
            # loads, its write, the commit, or taking a failed command back).
            log.error("order engine batch failed", error=type(exc).__name__, exc_info=True)
            self._epoch = None
            _settle([(w, UnavailableError("The order could not be processed.")) for _, w in items])
            return
        self.batches += 1
        self.commands += len(items)
        if carry:
            for command, _ in items:
                for carried in command.carried:
                    carried.committed = True
        _settle([(w, r) for (_, w), r in zip(items, results, strict=True)])
        if batch.failed:
            # The checks may have counted an order that was taken back: they read afresh.
            self._checks_hook("invalidate")
        self._notify_executions(batch.executions)
        try:
            self._publish_market(batch)
            self.hub.publish(batch.events)
        except Exception as exc:  # noqa: BLE001 - committed already; the engine must go on
            log.error("order engine publish failed", error=type(exc).__name__)

    def _run_command(self, batch: _Batch, command: Command) -> Any:
        """Run one command of the batch so that its failure is its own.

        A refusal (`RampartError`) is its answer; any other exception is a bug or a fault this
        command met, answered 503. Either way what the command changed is taken back (its
        savepoint, if it ran statements, and its changes in memory) and the batch goes on to
        commit the others, with no rebuild of the books."""
        ledger = batch.ledger
        undo = batch.undo = CommandUndo(
            (
                len(batch.fills),
                len(batch.outbox),
                len(batch.events),
                len(batch.executions),
                len(ledger.entries),
                len(batch.audit),
                len(batch.audit_events),
                len(ledger.accounts),
                len(ledger.positions),
            )
        )
        try:
            result = self._handle(batch, command)
            self._mark_shorts(batch, undo)
        except RampartError as exc:
            # Refusals are raised before a change, but for the audit entry of a refused
            # modification, which is kept.
            self._take_back(batch, undo, keep_audit=True)
            return exc
        except Exception as exc:  # noqa: BLE001 - whatever it is, it fails this command alone
            # The type only: the message or the values could carry what the command held.
            log.error(
                "order engine command failed",
                error=type(exc).__name__,
                command=type(command).__name__,
            )
            self._take_back(batch, undo, keep_audit=False)
            batch.failed = True
            return UnavailableError("The order could not be processed.")
        finally:
            batch.undo = None
        if batch.savepoint is not None:
            batch.savepoint.commit()
            batch.savepoint = None
        return result

    def _take_back(self, batch: _Batch, undo: CommandUndo, *, keep_audit: bool) -> None:
        """Undo what a failed command changed (`rampart.trading.undo`). Runs only when a command
        failed, so it favours being obviously right over being fast: the maps and books of the
        symbols the command touched are re-derived from the engine's open orders."""
        savepoint, batch.savepoint = batch.savepoint, None
        if savepoint is not None:
            savepoint.rollback()
        touched = undo.restore()
        for position in undo.positions():
            self._index_short(position)
        for order, _, had in undo.orders.values():
            if not had:
                batch.orders.pop(order.id, None)
            batch.views.pop(order.id, None)
        created = {o.id for o in undo.created}
        for order in undo.created:
            batch.orders.pop(order.id, None)
            batch.views.pop(order.id, None)
            if order.client_order_id is not None:
                key = (order.user_id, order.client_order_id)
                if batch.client_ids.get(key) is order:
                    del batch.client_ids[key]
        for order in touched:
            open_now = order.id not in created and order.is_open
            if open_now and order.id not in self._open:
                self._add_open(order)
            elif not open_now and order.id in self._open:
                self._remove_open(order)
            stops = self._stops.setdefault(order.symbol, {})
            if open_now and order.is_stop and not order.triggered:
                stops[order.id] = order
            else:
                stops.pop(order.id, None)
        for user_id, symbol in {(o.user_id, o.symbol) for o in touched}:
            pending = sum(
                (
                    o.remaining
                    for o in self._open_by_user.get(user_id, {}).values()
                    if o.symbol == symbol and o.side is OrderSide.SELL
                ),
                ZERO,
            )
            if pending:
                self._pending_sell[(user_id, symbol)] = pending
            else:
                self._pending_sell.pop((user_id, symbol), None)
        for symbol in {o.symbol for o in touched} | set(undo.last_prices):
            last = undo.last_prices.get(symbol, self.venue.book(symbol).last_price)
            resting = [
                self._venue_order(o)
                for o in self._open.values()
                if o.symbol == symbol
                and o.working_price is not None
                and not (o.is_stop and not o.triggered)
            ]
            self.venue.reset(symbol, resting, last)
        fills, outbox, events, executions, entries, audit, audit_events, accounts, positions = (
            undo.lengths
        )
        del batch.fills[fills:]
        del batch.outbox[outbox:]
        del batch.events[events:]
        del batch.executions[executions:]
        del batch.ledger.entries[entries:]
        if not keep_audit:
            del batch.audit[audit:]
            del batch.audit_events[audit_events:]
        if savepoint is not None:
            # The rows the command loaded were locked (or created) by statements now rolled
            # back: the batch must not write them as if it held them.
            for account_id in list(batch.ledger.accounts)[accounts:]:
                del batch.ledger.accounts[account_id]
            for key in list(batch.ledger.positions)[positions:]:
                del batch.ledger.positions[key]

    def _checks_hook(self, name: str, *args: Any) -> None:
        """Call the optional batch hooks of the pre-trade checks (`PreTradeCheck`)."""
        for check in self.checks:
            hook = getattr(check, name, None)
            if hook is not None:
                hook(*args)

    def _notify_executions(self, executions: list[tuple[str, str, str, Decimal]]) -> None:
        for listener in self.execution_listeners:
            for user_id, symbol, side, quantity in executions:
                try:
                    listener(user_id, symbol, side, quantity)
                except Exception:
                    log.error("execution listener failed", exc_info=True)

    # --- epoch and rebuild -------------------------------------------------------------------
    def _lock_epoch(self, batch: _Batch) -> int:
        conn = batch.uow.session.connection()
        venue = {"venue": self.venue.name}
        epoch = conn.execute(_LOCK_EPOCH, venue).scalar()
        if epoch is None:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            conn.execute(
                insert(ENGINE_STATE).on_conflict_do_nothing(),
                [{"venue": self.venue.name, "epoch": 0, "updated_at": batch.now}],
            )
            epoch = conn.execute(_LOCK_EPOCH, venue).scalar_one()
        if epoch != self._epoch:
            self._rebuild(batch)
        return int(epoch)

    def _rebuild(self, batch: _Batch) -> None:
        """Load every open order and rebuild the books: on start, and after another writer."""
        conn = batch.uow.session.connection()
        self.venue.clear()
        self._open.clear()
        self._open_count.clear()
        self._open_by_user.clear()
        self._stops.clear()
        self._pending_sell.clear()
        self._shorts.clear()
        for user_id, symbol in self._ledger.short_positions(batch.uow.session):
            self._shorts.setdefault(symbol, set()).add(user_id)
        rows = conn.execute(
            select(ORDERS)
            .where(ORDERS.c.status.in_([s.value for s in OPEN_STATUSES]))
            .order_by(ORDERS.c.priority)
        )
        resting: list[VenueOrder] = []
        for row in rows:
            order = _order_from_row(row)
            self._add_open(order)
            if order.side is OrderSide.SELL:
                key = (order.user_id, order.symbol)
                self._pending_sell[key] = self._pending_sell.get(key, ZERO) + order.remaining
            if order.is_stop and not order.triggered:
                self._stops.setdefault(order.symbol, {})[order.id] = order
            elif order.working_price is not None:
                resting.append(self._venue_order(order))
        self.venue.restore(resting)
        self._priority = int(conn.execute(select(func.max(ORDERS.c.priority))).scalar() or 0)
        last_ids = select(func.max(FILLS.c.id)).group_by(FILLS.c.symbol)
        for row in conn.execute(
            select(FILLS.c.symbol, FILLS.c.price).where(FILLS.c.id.in_(last_ids))
        ):
            self.venue.book(row.symbol).last_price = row.price
        self._snapshots = {s: self.venue.snapshot(s) for s in self.venue.symbols()}
        # Another writer may have traded: what the checks counted on since is not all there is.
        self._checks_hook("invalidate")
        log.info("order books rebuilt", open_orders=len(self._open))

    # --- loading -----------------------------------------------------------------------------
    def _prefetch(self, batch: _Batch, commands: list[Command]) -> set[str]:
        """Load what the batch will touch; returns the accounts whose commands it runs."""
        users: set[str] = set()
        symbols: set[str] = set()
        client_ids: set[tuple[str, str]] = set()
        positions: set[tuple[str, str]] = set()
        #: Per (symbol, side): the batch's takers' quantity in all and their widest limit.
        takers: dict[tuple[str, Side], tuple[Decimal, Decimal | None]] = {}
        for command in commands:
            if isinstance(command, Place):
                request = command.request
                users.add(command.user_id)
                symbols.add(request.symbol)
                positions.add((command.user_id, request.symbol))
                if request.client_order_id is not None:
                    client_ids.add((command.user_id, request.client_order_id))
                if request.stop_price is None:
                    side = request.side.book_side
                    total, widest = takers.get((request.symbol, side), (ZERO, request.limit_price))
                    takers[(request.symbol, side)] = (
                        total + request.quantity,
                        _wider(side, widest, request.limit_price),
                    )
            elif isinstance(command, CancelOpen):
                for matching in self._matching_open(command.account_id, command.symbol):
                    users.add(matching.user_id)
                    symbols.add(matching.symbol)
            elif isinstance(command, Modify | Cancel):
                order = self._open.get(command.order_id)
                if order is not None:
                    users.add(order.user_id)
                    symbols.add(order.symbol)
        # The makers the batch's orders would trade with: their accounts and positions come in
        # the same two statements, not a round trip per new counterparty. Walked for all the
        # batch's takers on a side at once (each takes what the one before left).
        placers = set(users)
        for (symbol, side), (quantity, limit) in takers.items():
            for maker in self.venue.counterparties(symbol, side, quantity, limit, placers):
                users.add(maker)
                positions.add((maker, symbol))
        self._load_instruments(batch, symbols)
        self._ledger.load_accounts(batch.uow, batch.ledger, users, system=[CLEARING_ACCOUNT])
        self._ledger.load_positions(batch.uow, batch.ledger, positions)
        if client_ids:
            conn = batch.uow.session.connection()
            rows = conn.execute(
                select(ORDERS).where(
                    ORDERS.c.user_id.in_({u for u, _ in client_ids}),
                    ORDERS.c.client_order_id.in_({c for _, c in client_ids}),
                )
            )
            for row in rows:
                key = (row.user_id, row.client_order_id)
                if key in client_ids:
                    batch.client_ids[key] = self._open.get(row.id) or _order_from_row(row)
        return placers

    def _load_instruments(self, batch: _Batch, symbols: Iterable[str]) -> None:
        wanted = [s for s in symbols if s not in batch.instruments]
        if not wanted:
            return
        batch.statement()
        conn = batch.uow.session.connection()
        for row in conn.execute(_INSTRUMENTS_BY_SYMBOL, {"symbols": wanted}):
            batch.instruments[row.symbol] = to_instrument(row)
        for symbol in wanted:
            batch.instruments.setdefault(symbol, None)

    def _account(self, batch: _Batch, user_id: str) -> CashAccount:
        key = cash_account_id(user_id)
        account = batch.ledger.accounts.get(key)
        if account is None:
            batch.statement()
            self._ledger.load_accounts(batch.uow, batch.ledger, [user_id])
            account = batch.ledger.accounts[key]
        if batch.undo is not None:
            batch.undo.save_account(account)
        return account

    def _position(self, batch: _Batch, user_id: str, symbol: str) -> Position:
        key = (user_id, symbol)
        position = batch.ledger.positions.get(key)
        if position is None:
            batch.statement()
            self._ledger.load_positions(batch.uow, batch.ledger, [key])
            position = batch.ledger.positions[key]
        if batch.undo is not None:
            batch.undo.save_position(key, position)
        return position

    @staticmethod
    def _touch(batch: _Batch, order: Order) -> None:
        """Save an order's fields before the command changes them (`rampart.trading.undo`)."""
        if batch.undo is not None:
            batch.undo.save_order(order, batch.orders)

    # --- commands ----------------------------------------------------------------------------
    def _handle(self, batch: _Batch, command: Command) -> Any:
        if isinstance(command, Place):
            return self._place(batch, command)
        if isinstance(command, Modify):
            return self._modify(batch, command)
        if isinstance(command, Cancel):
            order = self._owned_open(batch, command.user_id, command.order_id)
            self._cancel(batch, order, Reason.USER_CANCELLED, command.actor)
            return batch.view(order)
        if isinstance(command, CancelAll):
            mine = [
                o
                for o in self._open.values()
                if o.user_id == command.user_id
                and (command.symbol is None or o.symbol == command.symbol)
            ]
            for order in sorted(mine, key=lambda o: o.priority):
                self._cancel(batch, order, Reason.USER_CANCELLED, command.actor)
            return [batch.view(o) for o in mine]
        if isinstance(command, CancelOpen):
            matching = self._matching_open(command.account_id, command.symbol)
            for order in sorted(matching, key=lambda o: o.priority):
                self._cancel(batch, order, command.reason[:40], command.actor)
            return len(matching)
        if isinstance(command, ExpireDay):
            day = [o for o in self._open.values() if o.time_in_force is TimeInForce.DAY]
            for order in day:
                self._finish(batch, order, OrderStatus.EXPIRED, Reason.END_OF_DAY, command.actor)
            return len(day)
        raise TypeError(f"unknown command {type(command).__name__}")

    def _matching_open(self, account_id: str | None, symbol: str | None) -> list[Order]:
        return [
            o
            for o in self._open.values()
            if (account_id is None or o.user_id == account_id)
            and (symbol is None or o.symbol == symbol)
        ]

    def _place(self, batch: _Batch, command: Place) -> PlaceResult:
        request = command.request
        if request.client_order_id is not None:
            existing = batch.client_ids.get((command.user_id, request.client_order_id))
            if existing is not None:
                if not request.same_as(existing):
                    raise ClientOrderIdReusedError(
                        "A different order already used this client_order_id."
                    )
                return PlaceResult(existing.view(), created=False)
        listed = batch.instruments.get(request.symbol)
        if listed is not None:
            check_instrument_limits(
                listed, request.quantity, request.limit_price, request.stop_price
            )
        order = Order(
            id=new_id(),
            user_id=command.user_id,
            symbol=request.symbol,
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            quantity=request.quantity,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            client_order_id=request.client_order_id,
            created_at=batch.now,
            updated_at=batch.now,
        )
        if batch.undo is not None:
            batch.undo.created.append(order)
        batch.orders[order.id] = order
        if request.client_order_id is not None:
            batch.client_ids[(command.user_id, request.client_order_id)] = order
        instrument = batch.instruments.get(order.symbol)
        reason: str | None
        reservation = ZERO
        if instrument is None:
            reason = Reason.UNKNOWN_INSTRUMENT
        else:
            reason, reservation = self._check(
                batch,
                order,
                instrument,
                "new",
                order.quantity,
                actor=command.actor,
                permissions=command.permissions,
                credential_id=command.credential_id,
            )
        if reason is not None:
            order.transition(OrderStatus.REJECTED, batch.now, reason)
            self._record(batch, order, OrderStatus.NEW, "rejected", command.actor)
            return PlaceResult(batch.view(order), created=True)
        assert instrument is not None
        if reservation:
            self._account(batch, order.user_id).reserve(reservation)
            order.reserved = reservation
        order.transition(OrderStatus.ACCEPTED, batch.now)
        self._record(batch, order, OrderStatus.NEW, "accepted", command.actor)
        self._add_open(order)
        if order.side is OrderSide.SELL:
            key = (order.user_id, order.symbol)
            self._pending_sell[key] = self._pending_sell.get(key, ZERO) + order.quantity
        if order.is_stop:
            self._stops.setdefault(order.symbol, {})[order.id] = order
        else:
            self._execute(batch, order, command.actor)
        self._trigger_stops(batch, order.symbol)
        return PlaceResult(batch.view(order), created=True)

    def _check(
        self,
        batch: _Batch,
        order: Order,
        instrument: Instrument,
        action: str,
        quantity: Decimal,
        *,
        actor: str,
        permissions: frozenset[str] | None,
        credential_id: str | None,
        replaced: Order | None = None,
    ) -> tuple[str | None, Decimal]:
        """Built-in checks, then the registered pre-trade checks: (reason or None, reservation).

        `quantity` is what the order would then have open (its remaining quantity); `replaced`
        is the open order a modification replaces."""
        reason: str | None = check_shape(order, instrument)
        if reason is not None:
            return reason, ZERO
        position = self._position(batch, order.user_id, order.symbol)
        reason = check_restricted(order, instrument, position.quantity, quantity)
        if reason is not None:
            return reason, ZERO
        account = self._account(batch, order.user_id)
        current = self._open.get(order.id)
        held = current.reserved if current is not None else ZERO
        reservation = ZERO
        if order.side is OrderSide.SELL:
            pending = self._pending_sell.get((order.user_id, order.symbol), ZERO)
            if current is not None:
                pending -= current.remaining
            if quantity > position.quantity - pending:
                return Reason.INSUFFICIENT_POSITION, ZERO
        else:
            per_unit = order.limit_price if order.limit_price is not None else order.stop_price
            if per_unit is not None:
                cost = per_unit * quantity
            else:
                probe = VenueOrder(
                    order.id,
                    order.user_id,
                    order.symbol,
                    order.side.book_side,
                    quantity,
                    None,
                    order.time_in_force,
                    0,
                )
                fillable, cost = self.venue.executable(probe)
                if fillable <= 0:
                    return Reason.NO_LIQUIDITY, ZERO
            reservation = self._reservation(order, position, quantity, cost)
            # An order that needs no more than it holds passes even in a margin deficit (a
            # buy that covers a short, paid from the short's collateral).
            if reservation > held and reservation - held > account.buying_power:
                return Reason.INSUFFICIENT_BUYING_POWER, ZERO
        if self.checks:
            book = self.venue.book(order.symbol)
            context = PreTradeContext(
                action=action,
                instrument=instrument,
                cash_balance=account.balance,
                cash_reserved=account.reserved,
                buying_power=account.buying_power,
                position_quantity=position.quantity,
                open_orders=self._open_count.get((order.user_id, order.symbol), 0)
                - (1 if order.id in self._open else 0),
                last_price=book.last_price or instrument.reference_price,
                reservation=reservation,
                book=self._snapshots.get(order.symbol),
                actor=actor,
                permissions=permissions,
                credential_id=credential_id,
                replaced_quantity=replaced.remaining if replaced is not None else None,
                replaced_price=(
                    None
                    if replaced is None
                    else replaced.limit_price
                    if replaced.limit_price is not None
                    else replaced.stop_price
                ),
            )
            for check in self.checks:
                verdict = check.check(order, context)
                if verdict is not None:
                    return str(verdict)[:40], ZERO
        return None, reservation

    def _modify(self, batch: _Batch, command: Modify) -> dict[str, Any]:
        order = self._owned_open(batch, command.user_id, command.order_id)
        if order.working_price is None and not order.is_stop:
            raise OrderNotOpenError("Market orders cannot be modified.")
        if order.is_stop and order.triggered and order.type is OrderType.STOP:
            raise OrderNotOpenError("A triggered stop order works at market.")
        if command.limit_price is not None and order.limit_price is None:
            raise InvalidOrderError("Only limit and stop-limit orders have a limit price.")
        if command.stop_price is not None and (order.stop_price is None or order.triggered):
            raise InvalidOrderError("Only untriggered stop orders have a stop price to change.")
        quantity = command.quantity if command.quantity is not None else order.quantity
        limit = command.limit_price if command.limit_price is not None else order.limit_price
        stop = command.stop_price if command.stop_price is not None else order.stop_price
        if quantity <= order.filled_quantity:
            raise InvalidOrderError("The new quantity must exceed the quantity already filled.")
        candidate = Order(
            id=order.id,
            user_id=order.user_id,
            symbol=order.symbol,
            side=order.side,
            type=order.type,
            time_in_force=order.time_in_force,
            quantity=quantity,
            limit_price=limit,
            stop_price=stop,
            client_order_id=order.client_order_id,
            created_at=order.created_at,
            updated_at=batch.now,
            status=order.status,
            filled_quantity=order.filled_quantity,
            triggered=order.triggered,
        )
        instrument = batch.instruments.get(order.symbol)
        if instrument is None:
            self._load_instruments(batch, [order.symbol])
            instrument = batch.instruments.get(order.symbol)
        if instrument is None:
            raise ModifyRejectedError(Reason.UNKNOWN_INSTRUMENT)
        # The new figures only, and a quantity only when it grows: an order placed before its
        # instrument's limits were tightened may still be reduced.
        check_instrument_limits(
            instrument,
            command.quantity if quantity > order.quantity else None,
            command.limit_price,
            command.stop_price,
        )
        remaining = quantity - order.filled_quantity
        reason, reservation = self._check(
            batch,
            candidate,
            instrument,
            "modify",
            remaining,
            actor=command.actor,
            permissions=command.permissions,
            credential_id=command.credential_id,
            replaced=order,
        )
        if reason is not None:
            self._audit(
                batch,
                AuditEvent(
                    action="order.modify.rejected",
                    outcome="failure",
                    subject=f"order:{order.id}",
                    details={"reason": reason, "user_id": order.user_id},
                    actor=command.actor,
                ),
            )
            raise ModifyRejectedError(reason)
        self._touch(batch, order)
        keeps_priority = (
            limit == order.limit_price and stop == order.stop_price and (quantity <= order.quantity)
        )
        account = self._account(batch, order.user_id)
        if order.reserves_cash:
            if reservation > order.reserved:
                account.reserve(reservation - order.reserved)
            else:
                account.release(order.reserved - reservation)
            order.reserved = reservation
        if order.side is OrderSide.SELL:
            key = (order.user_id, order.symbol)
            self._pending_sell[key] = self._pending_sell.get(key, ZERO) + (
                remaining - order.remaining
            )
        previous = {
            "quantity": str(order.quantity),
            "limit_price": fmt(order.limit_price),
            "stop_price": fmt(order.stop_price),
        }
        order.quantity, order.limit_price, order.stop_price = quantity, limit, stop
        before = order.transition(order.status, batch.now)
        self._record(
            batch,
            order,
            before,
            "modified",
            command.actor,
            {"previous": previous, "priority_kept": keeps_priority},
        )
        if order.is_stop and not order.triggered:
            pass
        elif keeps_priority:
            self.venue.reduce(order.symbol, order.id, order.remaining)
        else:
            self.venue.cancel(order.symbol, order.id)
            self._execute(batch, order, command.actor)
        self._trigger_stops(batch, order.symbol)
        return batch.view(order)

    def _owned_open(self, batch: _Batch, user_id: str, order_id: str) -> Order:
        order = self._open.get(order_id)
        if order is not None and order.user_id == user_id:
            return order
        # Another user's order looks exactly like no order at all.
        batch.statement()
        row = (
            batch.uow.session.connection()
            .execute(
                select(ORDERS.c.status).where(ORDERS.c.id == order_id, ORDERS.c.user_id == user_id)
            )
            .first()
        )
        if row is None:
            raise OrderNotFoundError
        raise OrderNotOpenError(f"The order is {row.status}.")

    # --- execution ---------------------------------------------------------------------------
    def _add_open(self, order: Order) -> None:
        self._open[order.id] = order
        self._open_by_user.setdefault(order.user_id, {})[order.id] = order
        key = (order.user_id, order.symbol)
        self._open_count[key] = self._open_count.get(key, 0) + 1

    def _venue_order(self, order: Order) -> VenueOrder:
        return VenueOrder(
            order_id=order.id,
            owner=order.user_id,
            symbol=order.symbol,
            side=order.side.book_side,
            quantity=order.remaining,
            price=order.working_price,
            time_in_force=order.time_in_force,
            priority=order.priority,
        )

    def _execute(self, batch: _Batch, order: Order, actor: str) -> None:
        """Send an open order to the venue and apply what happened."""
        self._touch(batch, order)
        if batch.undo is not None:
            batch.undo.save_last_price(order.symbol, self.venue.book(order.symbol).last_price)
        self._priority += 1
        order.priority = self._priority
        report = self.venue.submit(self._venue_order(order))
        batch.symbols.add(order.symbol)
        for resting in report.self_trade_cancelled:
            maker = self._open.get(resting.order_id)
            if maker is not None:
                self._finish(
                    batch, maker, OrderStatus.CANCELLED, Reason.SELF_TRADE_PREVENTED, "system"
                )
        for match in report.matches:
            maker = self._open[match.maker_id]
            self._trade(batch, order, maker, match.price, match.quantity, actor)
        if report.cancelled > 0 and order.is_open:
            reason = {
                "fok-not-fillable": Reason.FOK_NOT_FILLABLE,
                "ioc-remainder": Reason.IOC_REMAINDER,
                "no-liquidity": Reason.NO_LIQUIDITY,
            }.get(report.cancel_reason or "", Reason.IOC_REMAINDER)
            self._finish(batch, order, OrderStatus.CANCELLED, reason, actor)

    def _trade(
        self,
        batch: _Batch,
        taker: Order,
        maker: Order,
        price: Decimal,
        quantity: Decimal,
        actor: str,
    ) -> None:
        buyer, seller = (taker, maker) if taker.side is OrderSide.BUY else (maker, taker)
        buyer_cash = self._account(batch, buyer.user_id)
        seller_cash = self._account(batch, seller.user_id)
        notional = price * quantity
        trade_id = new_id()
        if batch.undo is not None:
            batch.undo.save_account(batch.ledger.accounts[CLEARING_ACCOUNT])
        batch.ledger.post(
            JournalEntry(
                new_id(),
                "trade",
                trade_id,
                (
                    Posting(buyer_cash.account_id, -notional),
                    Posting(CLEARING_ACCOUNT, notional),
                    Posting(CLEARING_ACCOUNT, -notional),
                    Posting(seller_cash.account_id, notional),
                ),
            )
        )
        for order, liquidity in ((taker, "taker"), (maker, "maker")):
            self._apply_fill(
                batch,
                order,
                price,
                quantity,
                trade_id,
                liquidity,
                actor if order is taker else "system",
            )
        batch.events.append(
            StreamEvent(
                "trade",
                {
                    "symbol": taker.symbol,
                    "price": fmt(price),
                    "quantity": fmt(quantity),
                    "trade_id": trade_id,
                    "at": batch.now.isoformat(),
                    "aggressor": taker.side.book_side.value,
                },
                symbol=taker.symbol,
            )
        )

    def _apply_fill(
        self,
        batch: _Batch,
        order: Order,
        price: Decimal,
        quantity: Decimal,
        trade_id: str,
        liquidity: str,
        actor: str,
    ) -> None:
        self._touch(batch, order)
        account = self._account(batch, order.user_id)
        if order.reserved > 0:
            # A limit order held its limit price per unit; a market order held the exact cost
            # (a short sale: its initial margin rate of either).
            cost = (order.working_price or price) * quantity
            if order.side is OrderSide.SELL_SHORT:
                cost = ledger_ceiling(cost * self.short_initial_margin)
            release = min(order.reserved, cost)
            account.release(release)
            order.reserved -= release
        position = self._position(batch, order.user_id, order.symbol)
        realised = position.apply_fill(order.side is OrderSide.BUY, quantity, price)
        # The trade's price is the symbol's last: the position's collateral follows it.
        account.hold_for(
            position, short_collateral(position.quantity, price, self.short_initial_margin)
        )
        self._index_short(position)
        order.filled_quantity += quantity
        order.filled_notional += price * quantity
        if order.side is OrderSide.SELL:
            key = (order.user_id, order.symbol)
            self._pending_sell[key] = self._pending_sell.get(key, ZERO) - quantity
        fill = Fill(
            new_id(),
            trade_id,
            order.id,
            order.user_id,
            order.symbol,
            order.side,
            price,
            quantity,
            liquidity,
            batch.now,
            realised,
        )
        batch.fills.append(fill)
        batch.executions.append((order.user_id, order.symbol, order.side.value, quantity))
        batch.events.append(StreamEvent("fill", fill.view(), user_id=order.user_id))
        status = OrderStatus.FILLED if order.remaining == 0 else OrderStatus.PARTIALLY_FILLED
        before = order.transition(status, batch.now)
        self._record(
            batch,
            order,
            before,
            status.value,
            actor,
            {"fill_price": str(price), "fill_quantity": str(quantity)},
        )
        if status is OrderStatus.FILLED:
            self._close(batch, order)

    def _cancel(self, batch: _Batch, order: Order, reason: str, actor: str) -> None:
        self._finish(batch, order, OrderStatus.CANCELLED, reason, actor)

    def _finish(
        self, batch: _Batch, order: Order, status: OrderStatus, reason: str, actor: str
    ) -> None:
        """Move an open order to a final state (cancelled, expired) and free what it held."""
        self._touch(batch, order)
        self.venue.cancel(order.symbol, order.id)
        stops = self._stops.get(order.symbol)
        if stops is not None:
            stops.pop(order.id, None)
        if order.side is OrderSide.SELL:
            key = (order.user_id, order.symbol)
            self._pending_sell[key] = self._pending_sell.get(key, ZERO) - order.remaining
        before = order.transition(status, batch.now, reason)
        self._record(batch, order, before, status.value, actor)
        self._close(batch, order)
        batch.symbols.add(order.symbol)

    def _close(self, batch: _Batch, order: Order) -> None:
        if order.reserved > 0:
            self._account(batch, order.user_id).release(order.reserved)
            order.reserved = ZERO
        self._remove_open(order)
        key = (order.user_id, order.symbol)
        if self._pending_sell.get(key) == 0:
            del self._pending_sell[key]

    def _remove_open(self, order: Order) -> None:
        if self._open.pop(order.id, None) is None:
            return
        mine = self._open_by_user.get(order.user_id)
        if mine is not None:
            mine.pop(order.id, None)
            if not mine:
                del self._open_by_user[order.user_id]
        key = (order.user_id, order.symbol)
        left = self._open_count.get(key, 0) - 1
        if left > 0:
            self._open_count[key] = left
        else:
            self._open_count.pop(key, None)

    def _trigger_stops(self, batch: _Batch, symbol: str) -> None:
        """Trigger stop orders the last trade price has reached, until none is left to trigger."""
        for _ in range(10_000):
            stops = self._stops.get(symbol)
            last = self.venue.book(symbol).last_price
            if not stops or last is None:
                return
            ready = [
                o
                for o in stops.values()
                if o.stop_price is not None
                and (
                    (o.side is OrderSide.BUY and last >= o.stop_price)
                    or (o.side is not OrderSide.BUY and last <= o.stop_price)
                )
            ]
            if not ready:
                return
            order = min(ready, key=lambda o: o.priority)
            self._touch(batch, order)
            del stops[order.id]
            order.triggered = True
            before = order.transition(order.status, batch.now)
            self._record(batch, order, before, "triggered", "system", {"last_price": str(last)})
            if order.type is OrderType.STOP and order.reserves_cash:
                # A stop becomes a market order: hold exactly what it will cost now.
                account = self._account(batch, order.user_id)
                account.release(order.reserved)
                order.reserved = ZERO
                fillable, cost = self.venue.executable(self._venue_order(order))
                if fillable <= 0:
                    self._finish(batch, order, OrderStatus.CANCELLED, Reason.NO_LIQUIDITY, "system")
                    continue
                position = self._position(batch, order.user_id, order.symbol)
                cost = self._reservation(order, position, order.remaining, cost)
                if cost > 0 and cost > account.buying_power:
                    self._finish(
                        batch,
                        order,
                        OrderStatus.CANCELLED,
                        Reason.INSUFFICIENT_BUYING_POWER,
                        "system",
                    )
                    continue
                if cost:
                    account.reserve(cost)
                order.reserved = cost
            self._execute(batch, order, "system")

    # --- short-sale margin (Regulation T) ----------------------------------------------------
    def _reservation(
        self, order: Order, position: Position, quantity: Decimal, cost: Decimal
    ) -> Decimal:
        """What an order that reserves cash holds for `quantity` costing `cost` at its price.

        A short sale holds the initial margin rate of its value: its proceeds are credited when
        it fills and held, with that margin, as the short's collateral. A buy holds its cost,
        less, for the part that covers a short (not already claimed by the account's other open
        buys), that part's share of the short's collateral, which its fill releases."""
        if order.side is OrderSide.SELL_SHORT:
            return ledger_ceiling(cost * self.short_initial_margin)
        short = -position.quantity
        if short <= 0 or position.margin_held <= 0:
            return cost
        claimed = sum(
            (
                o.remaining
                for o in self._open_by_user.get(order.user_id, {}).values()
                if o.symbol == order.symbol and o.side is OrderSide.BUY and o.id != order.id
            ),
            ZERO,
        )
        covering = min(quantity, max(short - claimed, ZERO))
        if covering <= 0:
            return cost
        share = position.margin_held * covering / short
        return max(ledger_ceiling(cost - share), ZERO)

    def _index_short(self, position: Position) -> None:
        users = self._shorts.get(position.symbol)
        if position.quantity < 0:
            if users is None:
                users = self._shorts[position.symbol] = set()
            users.add(position.user_id)
        elif users is not None:
            users.discard(position.user_id)
            if not users:
                del self._shorts[position.symbol]

    def _mark_shorts(self, batch: _Batch, undo: CommandUndo) -> None:
        """Mark every short in the symbols whose last price the command moved to that price:
        a rise raises the collateral held (and lowers buying power), a fall frees some."""
        for symbol, before in undo.last_prices.items():
            last = self.venue.book(symbol).last_price
            users = self._shorts.get(symbol)
            if last is None or last == before or not users:
                continue
            keys = [(user_id, symbol) for user_id in sorted(users)]
            missing_accounts = [
                u for u, _ in keys if cash_account_id(u) not in batch.ledger.accounts
            ]
            missing_positions = [k for k in keys if k not in batch.ledger.positions]
            if missing_accounts or missing_positions:
                batch.statement()
                self._ledger.load_accounts(batch.uow, batch.ledger, missing_accounts)
                self._ledger.load_positions(batch.uow, batch.ledger, missing_positions)
            for user_id, _ in keys:
                position = self._position(batch, user_id, symbol)
                self._account(batch, user_id).hold_for(
                    position, short_collateral(position.quantity, last, self.short_initial_margin)
                )

    # --- recording ---------------------------------------------------------------------------
    def _record(
        self,
        batch: _Batch,
        order: Order,
        before: OrderStatus,
        action: str,
        actor: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        batch.orders[order.id] = order
        for listener in self.order_listeners:
            listener(order)
        details: dict[str, Any] = {
            "from": before.value,
            "to": order.status.value,
            "user_id": order.user_id,
            "symbol": order.symbol,
            "side": order.side.value,
            "type": order.type.value,
            "quantity": str(order.quantity),
            "filled_quantity": str(order.filled_quantity),
            "version": order.version,
        }
        if order.limit_price is not None:
            details["limit_price"] = str(order.limit_price)
        if order.reason is not None:
            details["reason"] = order.reason
        if extra:
            details.update(extra)
        self._audit(
            batch,
            AuditEvent(
                action=f"order.{action}", subject=f"order:{order.id}", details=details, actor=actor
            ),
        )
        view = batch.views[order.id] = order.view()
        batch.outbox.append(
            {
                "id": new_id(),
                "topic": "order.updated",
                "payload": {"event": action, "user_id": order.user_id, "order": view},
                "created_at": batch.now,
                "available_at": batch.now,
                "attempts": 0,
            }
        )
        batch.events.append(StreamEvent("order", {"event": action, **view}, user_id=order.user_id))

    def _audit(self, batch: _Batch, event: AuditEvent) -> None:
        if self._write_audit is None:
            batch.audit_events.append(event)
        else:
            batch.audit.append(prepare(event, batch.context, batch.ts_ns))

    def _write(self, batch: _Batch, epoch: int) -> None:
        conn = batch.uow.session.connection()
        new = [o for o in batch.orders.values() if not o.persisted]
        changed = [o for o in batch.orders.values() if o.persisted]
        if new:
            _executemany(conn, ORDERS, _ORDER_COLUMNS, [_order_row(o) for o in new])
        if changed:
            _executemany(conn, ORDERS, _MUTABLE, [_order_row(o) for o in changed], keys=("id",))
        for order in new:
            order.persisted = True
        if batch.fills:
            _executemany(conn, FILLS, _FILL_COLUMNS, [_fill_row(f) for f in batch.fills])
        self._ledger.flush(batch.uow, batch.ledger)
        if batch.outbox:
            _executemany(conn, OUTBOX, _OUTBOX_COLUMNS, batch.outbox)
        if batch.audit and self._write_audit is not None:
            self._write_audit(batch.uow.session, batch.audit)
        for event in batch.audit_events:
            batch.uow.audit(event)
        conn.execute(
            _BUMP_EPOCH, {"venue_name": self.venue.name, "new_epoch": epoch + 1, "now": batch.now}
        )

    def _publish_market(self, batch: _Batch) -> None:
        for symbol in batch.symbols:
            snapshot = self.venue.snapshot(symbol)
            self._snapshots[symbol] = snapshot
            bid = snapshot.bids[0] if snapshot.bids else None
            ask = snapshot.asks[0] if snapshot.asks else None
            quote: tuple[Decimal | None, ...] = (
                bid.price if bid else None,
                bid.quantity if bid else None,
                ask.price if ask else None,
                ask.quantity if ask else None,
            )
            if self._quotes.get(symbol) == quote:
                continue
            self._quotes[symbol] = quote
            batch.events.append(
                StreamEvent(
                    "quote",
                    {
                        "symbol": symbol,
                        "bid": fmt(quote[0]),
                        "bid_size": fmt(quote[1]),
                        "ask": fmt(quote[2]),
                        "ask_size": fmt(quote[3]),
                        "at": batch.now.isoformat(),
                    },
                    symbol=symbol,
                )
            )


_MUTABLE = MUTABLE_ORDER_FIELDS


_ORDER_COLUMNS = (
    "id",
    "user_id",
    "client_order_id",
    "symbol",
    "side",
    "type",
    "time_in_force",
    "created_at",
    *_MUTABLE,
)
_FILL_COLUMNS = (
    "id",
    "trade_id",
    "order_id",
    "user_id",
    "symbol",
    "side",
    "price",
    "quantity",
    "liquidity",
    "created_at",
    "realised_pnl",
)
_OUTBOX_COLUMNS = ("id", "topic", "payload", "created_at", "available_at", "attempts")


def _order_row(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "user_id": order.user_id,
        "client_order_id": order.client_order_id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "time_in_force": order.time_in_force.value,
        "quantity": order.quantity,
        "limit_price": order.limit_price,
        "stop_price": order.stop_price,
        "status": order.status.value,
        "filled_quantity": order.filled_quantity,
        "filled_notional": order.filled_notional,
        "reserved": order.reserved,
        "priority": order.priority,
        "triggered": order.triggered,
        "reason": order.reason,
        "version": order.version,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def _fill_row(fill: Fill) -> dict[str, Any]:
    return {
        "id": fill.id,
        "trade_id": fill.trade_id,
        "order_id": fill.order_id,
        "user_id": fill.user_id,
        "symbol": fill.symbol,
        "side": fill.side.value,
        "price": fill.price,
        "quantity": fill.quantity,
        "liquidity": fill.liquidity,
        "created_at": fill.created_at,
        "realised_pnl": fill.realised_pnl,
    }


def _wider(side: Side, a: Decimal | None, b: Decimal | None) -> Decimal | None:
    """The limit that reaches further into the book (None, a market order, reaches all of it)."""
    if a is None or b is None:
        return None
    return max(a, b) if side is Side.BUY else min(a, b)


def _order_from_row(row: Any) -> Order:
    from rampart.kernel.clock import utc

    return Order(
        id=row.id,
        user_id=row.user_id,
        symbol=row.symbol,
        side=OrderSide(row.side),
        type=OrderType(row.type),
        time_in_force=TimeInForce(row.time_in_force),
        quantity=row.quantity,
        limit_price=row.limit_price,
        stop_price=row.stop_price,
        client_order_id=row.client_order_id,
        created_at=utc(row.created_at),
        updated_at=utc(row.updated_at),
        status=OrderStatus(row.status),
        filled_quantity=row.filled_quantity,
        filled_notional=row.filled_notional,
        reserved=row.reserved,
        priority=row.priority,
        triggered=row.triggered,
        reason=row.reason,
        version=row.version,
        persisted=True,
    )


def order_from_row(row: Any) -> Order:
    """An order from a `trading_order` row (for readers)."""
    return _order_from_row(row)


__all__ = [
    "Cancel",
    "CancelAll",
    "ClientOrderIdReusedError",
    "ExpireDay",
    "Modify",
    "ModifyRejectedError",
    "OrderEngine",
    "OrderNotFoundError",
    "OrderNotOpenError",
    "Place",
    "PlaceResult",
]

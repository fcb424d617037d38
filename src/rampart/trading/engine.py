"""The order engine: one writer thread that owns the books and group-commits every change.

Request handlers do not write orders. They put a command (`rampart.trading.commands`) on the
engine's queue and await its future. The engine thread takes whatever commands are waiting (up
to `batch_max`), and for the whole batch, in ONE database transaction:

1. locks the venue's epoch row and, if another process has committed since this one last did,
   rebuilds its books from the open orders (`rampart.trading.store`);
2. loads the cash accounts, positions and instruments the commands touch (the store);
3. runs each command in memory (`rampart.trading.core`): entry checks, then the pre-trade checks
   (`rampart.trading.entry`), reservations, matching in the venue, fills, journal entries,
   positions, order transitions (`rampart.trading.execution`);
4. writes orders, fills, journal, balances, positions, audit entries and outbox rows (the store);
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

This module is the runner: the queue, the thread, and the order of the steps above. It calls the
store and the core; neither calls back.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rampart.audit.writer import prepare
from rampart.kernel.context import RequestContext
from rampart.kernel.errors import RampartError, UnavailableError
from rampart.ledger.service import LedgerService
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.trading.batch import Batch
from rampart.trading.commands import (
    Cancel,
    CancelAll,
    CancelOpen,
    CarriedAudit,
    ClientOrderIdReusedError,
    Command,
    EngineBusyError,
    EngineStoppedError,
    ExpireDay,
    Modify,
    ModifyRejectedError,
    OrderNotFoundError,
    OrderNotOpenError,
    Place,
    PlaceResult,
)
from rampart.trading.core import TradingCore
from rampart.trading.domain import Order, OrderSide
from rampart.trading.ports import InstrumentSource, PreTradeCheck
from rampart.trading.store import BatchStore, BatchTransaction, WritePrepared
from rampart.trading.stream import StreamHub
from rampart.trading.undo import CommandUndo
from rampart.venue.domain import BookSnapshot, MatchingVenue
from rampart.venue.service import InstrumentService

log = get_logger(__name__)

_SYSTEM = RequestContext()
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


class OrderEngine:
    """The single writer of orders, fills, reservations and positions in this process."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        ledger: LedgerService,
        hub: StreamHub,
        *,
        instruments: InstrumentSource | None = None,
        venue: MatchingVenue | None = None,
        checks: list[PreTradeCheck] | None = None,
        batch_max: int = 256,
        queue_max: int = 10_000,
        write_audit: WritePrepared | None = None,
        short_initial_margin: Decimal = Decimal("0.50"),
    ) -> None:
        self._uow = uow_factory
        self.hub = hub
        self.venue = venue or MatchingVenue()
        #: Pre-trade checks after the entry checks (the risk engine appends its own).
        self.checks: list[PreTradeCheck] = checks if checks is not None else []
        self.core = TradingCore(self.venue, self.checks, short_initial_margin)
        #: Instruments are the venue's: read through its service, never its tables.
        self.store = BatchStore(
            self.venue.name, ledger, instruments or InstrumentService(), write_audit
        )
        #: Called with (user_id, symbol, side, quantity) for each fill once its batch has
        #: committed (the risk gate's repeated-execution throttle, trade counts and open-order
        #: view). Must be fast; an exception is logged, never raised.
        self.execution_listeners: list[Callable[[str, str, str, Decimal], None]] = []
        #: Called with each order the moment the engine records a change to it (accepted,
        #: filled, modified, cancelled, expired, triggered, rejected), on the engine thread: the
        #: risk gate keeps its view of open orders and positions exact with it. A failed batch
        #: is followed by a rebuild, which tells the checks (`invalidate`) to read afresh.
        self.order_listeners: list[Callable[[Order], None]] = self.core.execution.order_listeners
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
        self.batches = 0
        self.commands = 0

    @property
    def short_initial_margin(self) -> Decimal:
        return self.core.execution.short_initial_margin

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
        self._admit(1)
        self._queue.put_nowait((command, future))
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

    def call(self, command: Command, timeout: float = 30.0) -> Any:
        """Submit and wait (for threads: CLI, simulator, tests)."""
        return self.submit(command).result(timeout)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        items = self._gathering.pop(loop, None)
        if not items:
            return
        if not self.running:
            self._taken(len(items))
            _settle([(waiter, EngineStoppedError()) for _, waiter in items])
            return
        self._queue.put_nowait(items)

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

    # --- reads of the engine's memory ----------------------------------------------------------
    def open_orders_of(
        self, user_id: str
    ) -> list[tuple[str, str, OrderSide, Decimal, Decimal | None, Decimal, Decimal]]:
        """The user's open orders as the engine holds them, including those of the batch being
        processed: (id, symbol, side, remaining quantity, limit price, filled quantity, filled
        notional), oldest first.

        Meant for the pre-trade check, which runs on the engine thread; from another thread it
        is a consistent copy as of one moment (the dict is copied in one step under the GIL)."""
        orders = list(self.core.book.of_user(user_id))
        return [
            (o.id, o.symbol, o.side, o.remaining, o.limit_price, o.filled_quantity,
             o.filled_notional)
            for o in orders
        ]  # fmt: skip

    def snapshot(self, symbol: str) -> BookSnapshot | None:
        return self.core.market.snapshot(symbol)

    # --- the engine thread -------------------------------------------------------------------
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

    def _warm_up(self) -> None:
        """Rebuild the books before the first command, so quotes and books are there at once."""
        try:
            with self._uow() as uow:
                self._epoch = self._lock_epoch(self.store.transaction(uow), uow.clock.now())
        except Exception as exc:  # noqa: BLE001 - the first batch retries the rebuild
            log.error("order engine warm-up failed", error=type(exc).__name__)
            self._epoch = None
        finally:
            self._ready.set()

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
        """One batch: lock, load, run each command, write, commit; then answer and publish."""
        store, core = self.store, self.core
        carry = store.write_audit is not None
        results: list[Any] = []
        try:
            with self._uow() as uow:
                tx = store.transaction(uow)
                batch = Batch(
                    uow.clock.now(),
                    tx,
                    ts_ns=uow.clock.time_ns(),
                    prepare_audit=prepare if carry else None,
                )
                epoch = self._lock_epoch(tx, batch.now)
                needs = core.needs([c for c, _ in items])
                core.adopt_client_orders(batch, store.prefetch(tx, batch, needs))
                self._before_batch(needs.placers)
                try:
                    for command, _ in items:
                        batch.context = command.context or _SYSTEM
                        if carry:
                            # The access check came first: its entry precedes the order's.
                            batch.audit.extend(
                                prepare(c.event, c.context, c.ts_ns) for c in command.carried
                            )
                        results.append(self._run_command(tx, batch, command))
                finally:
                    for check in self.checks:
                        check.after_batch()
                store.write(tx, batch, epoch)
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
            self._invalidate_checks()
        self._notify_executions(batch.executions)
        try:
            core.market.publish(batch)
            self.hub.publish(batch.events)
        except Exception as exc:  # noqa: BLE001 - committed already; the engine must go on
            log.error("order engine publish failed", error=type(exc).__name__)

    def _lock_epoch(self, tx: BatchTransaction, now: Any) -> int:
        epoch = self.store.lock_epoch(tx, now)
        if epoch != self._epoch:
            self._rebuild(tx)
        return epoch

    def _rebuild(self, tx: BatchTransaction) -> None:
        """Load every open order and rebuild the books: on start, and after another writer."""
        self.core.rebuild(*self.store.read_open(tx))
        # Another writer may have traded: what the checks counted on since is not all there is.
        self._invalidate_checks()
        log.info("order books rebuilt", open_orders=len(self.core.book))

    def _run_command(self, tx: BatchTransaction, batch: Batch, command: Command) -> Any:
        """Run one command of the batch so that its failure is its own.

        A refusal (`RampartError`) is its answer; any other exception is a bug or a fault this
        command met, answered 503. Either way what the command changed is taken back (its
        savepoint, if it ran statements, and its changes in memory) and the batch goes on to
        commit the others, with no rebuild of the books."""
        undo = batch.undo = CommandUndo(batch.lengths())
        tx.begin_command()
        try:
            result = self.core.handle(batch, command)
        except RampartError as exc:
            # Refusals are raised before a change, but for the audit entry of a refused
            # modification, which is kept.
            self._take_back(tx, batch, undo, keep_audit=True)
            return exc
        except Exception as exc:  # noqa: BLE001 - whatever it is, it fails this command alone
            # The type only: the message or the values could carry what the command held.
            log.error(
                "order engine command failed",
                error=type(exc).__name__,
                command=type(command).__name__,
            )
            self._take_back(tx, batch, undo, keep_audit=False)
            batch.failed = True
            return UnavailableError("The order could not be processed.")
        finally:
            batch.undo = None
        tx.end_command(ok=True)
        return result

    def _take_back(
        self, tx: BatchTransaction, batch: Batch, undo: CommandUndo, *, keep_audit: bool
    ) -> None:
        """Roll back the command's statements, then its changes in memory."""
        rolled_back = tx.end_command(ok=False)
        self.core.take_back(batch, undo, keep_audit=keep_audit)
        if rolled_back:
            # The rows the command loaded were locked (or created) by statements now rolled
            # back: the batch must not write them as if it held them.
            accounts, positions = undo.lengths[-2:]
            for account_id in list(batch.ledger.accounts)[accounts:]:
                del batch.ledger.accounts[account_id]
            for key in list(batch.ledger.positions)[positions:]:
                del batch.ledger.positions[key]

    # --- the pre-trade checks' batch hooks, and the execution listeners -------------------------
    def _before_batch(self, accounts: set[str]) -> None:
        for check in self.checks:
            check.before_batch(accounts)

    def _invalidate_checks(self) -> None:
        for check in self.checks:
            check.invalidate()

    def _notify_executions(self, executions: list[tuple[str, str, str, Decimal]]) -> None:
        for listener in self.execution_listeners:
            for user_id, symbol, side, quantity in executions:
                try:
                    listener(user_id, symbol, side, quantity)
                except Exception:
                    log.error("execution listener failed", exc_info=True)


__all__ = [
    "Cancel",
    "CancelAll",
    "CancelOpen",
    "CarriedAudit",
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

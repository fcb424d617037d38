"""The demo market: liquidity providers and noise traders on a few symbols.

Agents are platform-owned identity accounts (`rampart.simulator.agents`: verified, MFA enrolled,
explicit audited limits, daily locates) that trade through the same order engine as everyone
else, so the demo exercises the real path: every pre-trade check, reservations, matching, ledger,
audit.
Each market maker quotes a ladder around a fair value that follows a random walk; noise traders
send small market and limit orders. The whole simulator places at most `simulator_rate` orders per
second, and on stop it cancels its open orders.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol

from rampart.config import TradingSettings
from rampart.kernel.errors import RampartError
from rampart.ledger.service import LedgerService
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.trading.domain import OrderSide, OrderTicket, OrderType
from rampart.trading.engine import CancelAll, Place
from rampart.trading.service import OrderService
from rampart.venue.domain import Instrument, InstrumentStatus, TimeInForce
from rampart.venue.service import DEMO_INSTRUMENTS

log = get_logger(__name__)

MAKERS = ("sim-maker-1", "sim-maker-2")
NOISE = ("sim-noise-1", "sim-noise-2", "sim-noise-3")
#: Demo cash each agent is topped up to on start.
AGENT_FUNDING = Decimal("1000000")
ACTOR = "system:simulator"


class Agents(Protocol):
    """Provides the agents' accounts (`rampart.simulator.agents.SimulatorAgents`)."""

    def ensure(self, names: tuple[str, ...], symbols: list[str]) -> dict[str, str]: ...

    def ensure_locates(self) -> None: ...


@dataclass
class _Symbol:
    instrument: Instrument
    fair: Decimal


def ensure_demo_market(orders: OrderService, uow_factory: Callable[[], UnitOfWork]) -> None:
    """Define the demo instruments that do not exist yet."""
    existing = {i.symbol for i in orders.instruments()}
    missing = [i for i in DEMO_INSTRUMENTS if i.symbol not in existing]
    if not missing:
        return
    from rampart.venue.service import InstrumentService

    with uow_factory() as uow:
        service = InstrumentService()
        for instrument in missing:
            service.upsert(uow, instrument)
        uow.commit()


class MarketSimulator:
    def __init__(
        self,
        orders: OrderService,
        ledger: LedgerService,
        uow_factory: Callable[[], UnitOfWork],
        settings: TradingSettings,
        agents: Agents,
        *,
        seed: int | None = None,
    ) -> None:
        self._agents = agents
        #: Agent name -> user id, filled by `prepare`.
        self.ids: dict[str, str] = {}
        self._orders = orders
        self._ledger = ledger
        self._uow = uow_factory
        self._rate = settings.simulator_rate
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._symbols: list[_Symbol] = []
        self.placed = 0

    def prepare(self) -> None:
        """Define the demo instruments, fund the agents and pick up the current marks."""
        ensure_demo_market(self._orders, self._uow)
        active = [
            i.symbol for i in self._orders.instruments() if i.status is InstrumentStatus.ACTIVE
        ]
        self.ids = self._agents.ensure(MAKERS + NOISE, active)
        self._fund_agents()
        self._symbols = []
        for instrument in self._orders.instruments():
            if instrument.status is not InstrumentStatus.ACTIVE:
                continue
            mark = self._orders.mark(instrument.symbol) or instrument.reference_price
            self._symbols.append(_Symbol(instrument, mark))

    def start(self) -> None:
        if self._thread is not None:
            return
        self.prepare()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="market-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(10)
        self.cancel_open_orders()

    def cancel_open_orders(self) -> None:
        """Cancel every agent's resting orders (their reservations are released with them)."""
        engine = self._orders.engine
        if engine.running:
            for user in self.agent_ids():
                try:
                    engine.call(CancelAll(user, ACTOR), timeout=5)
                except (RampartError, TimeoutError):
                    break

    def agent_ids(self) -> list[str]:
        return [self.ids[name] for name in MAKERS + NOISE if name in self.ids]

    def _fund_agents(self) -> None:
        with self._uow() as uow:
            for user in self.agent_ids():
                account = self._ledger.account(uow.session, user)
                if account.balance < AGENT_FUNDING / 2:
                    self._ledger.deposit(uow, user, AGENT_FUNDING - account.balance, "demo")
            uow.commit()

    def _run(self) -> None:
        interval = 1.0 / self._rate
        while not self._stop.wait(interval):
            if not self._symbols:
                continue
            try:
                self.step()
            except RampartError as exc:
                log.info("simulator order refused", code=exc.code)
            except Exception as exc:  # noqa: BLE001 - the demo keeps going; the error is logged
                log.error("simulator step failed", error=type(exc).__name__)

    # --- agents -------------------------------------------------------------------------------
    def step(self) -> None:
        """One agent action (placing one or a few orders)."""
        self._agents.ensure_locates()
        s = self._random.choice(self._symbols)
        tick = s.instrument.tick_size
        # Random walk of the fair value, in ticks, kept positive.
        move = Decimal(self._random.choice((-3, -2, -1, 0, 0, 1, 2, 3))) * tick
        s.fair = max(tick * 10, s.fair + move)
        if self._random.random() < 0.35:
            self._quote(s)
        else:
            self._noise(s)

    def _round(self, price: Decimal, tick: Decimal) -> Decimal:
        return (price / tick).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) * tick

    def _place(self, user: str, request: OrderTicket) -> dict[str, object]:
        result = self._orders.engine.call(Place(user, ACTOR, request), timeout=10)
        self.placed += 1
        return result.order

    def _quote(self, s: _Symbol) -> None:
        maker = self.ids[self._random.choice(MAKERS)]
        symbol, tick = s.instrument.symbol, s.instrument.tick_size
        spread = max(tick, self._round(s.fair * Decimal("0.001"), tick))
        held = self._orders_position(maker, symbol)
        requests = []
        for level in range(3):
            size = Decimal(self._random.randint(1, 10) * 10)
            bid = self._round(s.fair - spread * (level + 1), tick)
            ask = self._round(s.fair + spread * (level + 1), tick)
            requests.append(
                OrderTicket(symbol, OrderSide.BUY, OrderType.LIMIT, size, TimeInForce.DAY, bid)
            )
            side = OrderSide.SELL if held >= size else OrderSide.SELL_SHORT
            if side is OrderSide.SELL:
                held -= size
            requests.append(OrderTicket(symbol, side, OrderType.LIMIT, size, TimeInForce.DAY, ask))
        # The cancel and the new ladder are queued together, without waiting in between, so they
        # normally land in one engine batch: watchers see the old ladder replaced by the new one,
        # never the empty book in between (and it is one commit instead of seven).
        engine = self._orders.engine
        futures = [engine.submit(CancelAll(maker, ACTOR, symbol))]
        futures += [engine.submit(Place(maker, ACTOR, r)) for r in requests]
        for future in futures:
            future.result(10)
        self.placed += len(requests)

    def _noise(self, s: _Symbol) -> None:
        trader = self.ids[self._random.choice(NOISE)]
        symbol = s.instrument.symbol
        size = Decimal(self._random.randint(1, 5))
        buy = (
            self._random.random()
            < 0.5 + float((s.fair - (self._orders.mark(symbol) or s.fair)) / s.fair) * 5
        )
        held = self._orders_position(trader, symbol)
        side = OrderSide.BUY if buy else (OrderSide.SELL if held >= size else OrderSide.SELL_SHORT)
        if self._random.random() < 0.6:
            self._place(trader, OrderTicket(symbol, side, OrderType.MARKET, size, TimeInForce.IOC))
        else:
            offset = s.instrument.tick_size * self._random.randint(-5, 5)
            price = max(
                s.instrument.tick_size, self._round(s.fair + offset, s.instrument.tick_size)
            )
            self._place(
                trader, OrderTicket(symbol, side, OrderType.LIMIT, size, TimeInForce.IOC, price)
            )

    def _orders_position(self, user: str, symbol: str) -> Decimal:
        for p in self._orders.positions(user):
            if p["symbol"] == symbol:
                return Decimal(str(p["quantity"]))
        return Decimal(0)

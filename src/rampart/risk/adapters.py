"""Implementations of risk's ports from the services below it (identity, ledger), and the
background worker that keeps the in-memory controls current and writes refusals.

What comes from above (open orders, today's activity: the order engine's knowledge) is passed in
as a callable by `bootstrap`, which alone sees both sides.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Protocol

from sqlalchemy.orm import Session

from rampart.kernel.errors import NotFoundError
from rampart.platform.db import Database
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.risk.domain import AccountStatus, OpenOrderFact, PositionFact
from rampart.risk.ports import AccountFacts, TraderProfile

log = get_logger(__name__)

_ACCOUNT_STATUSES = {"active": AccountStatus.ACTIVE, "closed": AccountStatus.CLOSED}


class _User(Protocol):
    status: str
    email_verified: bool


class _Users(Protocol):
    def get(self, session: Session, user_id: str) -> _User: ...


class _Factors(Protocol):
    def required_factors(self, session: Session, user_id: str) -> list[str]: ...

    def in_cooling_period(self, session: Session, user_id: str) -> bool: ...


class IdentityTraderProfiles:
    """`TraderProfiles` from identity: account status, verified email, enrolled second factor.

    A locked identity account counts as suspended for trading."""

    def __init__(self, users: _Users, factors: _Factors) -> None:
        self._users = users
        self._factors = factors

    def trader_profile(self, session: Session, account_id: str) -> TraderProfile | None:
        try:
            user = self._users.get(session, account_id)
        except NotFoundError:
            return None
        status = _ACCOUNT_STATUSES.get(str(user.status), AccountStatus.SUSPENDED)
        enrolled = bool(self._factors.required_factors(session, account_id))
        hold = self._factors.in_cooling_period(session, account_id)
        return TraderProfile(status, bool(user.email_verified), enrolled, recovery_hold=hold)


class _Cash(Protocol):
    balance: Decimal
    reserved: Decimal


class _Ledger(Protocol):
    def account(self, session: Session, user_id: str) -> _Cash: ...

    def positions(self, session: Session, user_id: str) -> list[_Position]: ...


class _Position(Protocol):
    symbol: str
    quantity: Decimal
    cost_basis: Decimal
    realised_pnl: Decimal


class OpenOrders(Protocol):
    """The account's open orders, as the order engine reports them (wired from trading)."""

    def __call__(self, account_id: str) -> list[OpenOrderFact]: ...


class _DayActivity(Protocol):
    @property
    def orders_today(self) -> int: ...

    @property
    def trades_today(self) -> int: ...

    @property
    def short_sold_today(self) -> dict[str, Decimal]: ...

    @property
    def day_trade_dates(self) -> tuple[date, ...]: ...

    @property
    def realised_pnl_today(self) -> Decimal: ...

    @property
    def sides_today(self) -> dict[str, frozenset[bool]]: ...


class DayActivitySource(Protocol):
    """Today's activity of an account as the order engine recorded it (wired from trading:
    `OrderService.day_activity`)."""

    def __call__(self, session: Session, account_id: str, today: date, /) -> _DayActivity: ...


class LedgerAccountFacts:
    """`AccountFactsSource` from the ledger (cash, reservations, positions, cost basis and
    realised P&L), reference prices from `marks`, open orders from `open_orders`, and today's
    order, trade and short-sale counts, realised P&L and day-trade dates from `activity`, read
    from the fills the engine recorded, so they survive a restart. Without `activity` they are
    left to the gate's running figures, which start again after a restart: today's realised P&L
    is then the ledger's running total less its value at the gate's first load of the day."""

    def __init__(
        self,
        ledger: _Ledger,
        marks: Callable[[str], Decimal | None],
        open_orders: OpenOrders,
        activity: DayActivitySource | None = None,
        activity_ttl: float = 0.0,
    ) -> None:
        self._ledger = ledger
        self._marks = marks
        self._open_orders = open_orders
        self._activity = activity
        #: Today's activity is read from the fills and orders of the whole day, a cost that grows
        #: with the day's volume: it is re-read at most every `activity_ttl` seconds (and on a
        #: new day). In between its fields are None and the gate counts on from what it sees.
        self._activity_ttl = activity_ttl
        self._activity_read: dict[str, tuple[date, float]] = {}

    def forget(self, account_id: str) -> None:
        """Read the account's activity again on its next load."""
        self._activity_read.pop(account_id, None)

    def _day(self, session: Session, account_id: str, today: date) -> _DayActivity | None:
        if self._activity is None:
            return None
        now = time.monotonic()
        read = self._activity_read.get(account_id)
        if read is not None and read[0] == today and now - read[1] < self._activity_ttl:
            return None
        day = self._activity(session, account_id, today)
        self._activity_read[account_id] = (today, now)
        return day

    def account_facts(self, session: Session, account_id: str, today: date) -> AccountFacts:
        cash = self._ledger.account(session, account_id)
        every = self._ledger.positions(session, account_id)
        positions = [p for p in every if p.quantity != 0]
        day = self._day(session, account_id, today)
        return AccountFacts(
            cash=cash.balance,
            reserved=cash.reserved,
            positions=tuple(
                PositionFact(p.symbol, p.quantity, self._marks(p.symbol)) for p in positions
            ),
            open_orders=tuple(self._open_orders(account_id)),
            cost_basis={p.symbol: p.cost_basis for p in positions},
            realised_pnl_total=sum((p.realised_pnl for p in every), Decimal(0)),
            realised_pnl_today=day.realised_pnl_today if day is not None else None,
            orders_today=day.orders_today if day is not None else None,
            trades_today=day.trades_today if day is not None else None,
            day_trade_dates=day.day_trade_dates if day is not None else None,
            short_sold_today=dict(day.short_sold_today) if day is not None else None,
            sides_today=dict(day.sides_today) if day is not None else None,
        )


class _Loader(Protocol):
    def load(self, session: Session) -> object: ...


class _Drain(Protocol):
    wake: threading.Event
    writing: threading.Lock

    def drain(self, uow: UnitOfWork, max_records: int = 500) -> int: ...


class RiskWorker:
    """Reloads halts, states and limits every `interval` seconds (so each process sees changes
    another made), and writes queued refusals as risk events and audit entries."""

    def __init__(
        self,
        db: Database,
        uow_factory: Callable[[], UnitOfWork],
        service: _Loader,
        gate: _Drain | None,
        interval: float,
    ) -> None:
        self._db = db
        self._uow = uow_factory
        self._service = service
        self._gate = gate
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_reload = time.monotonic()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self.reload()
        self._thread = threading.Thread(target=self._loop, name="rampart-risk", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._gate is not None:
            self._gate.wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)
        self.flush()

    def reload(self) -> None:
        with self._db.read() as session:
            self._service.load(session)

    def flush(self) -> int:
        """Write every queued refusal now; returns how many were written."""
        if self._gate is None:
            return 0
        total = 0
        while True:
            with self._gate.writing, self._uow() as uow:
                written = self._gate.drain(uow)
                if written:
                    uow.commit()
            total += written
            if not written:
                return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._gate is not None:
                self._gate.wake.wait(self._interval)
                self._gate.wake.clear()
            else:
                self._stop.wait(self._interval)
            try:
                self.flush()
                now = time.monotonic()
                if now - self._last_reload >= self._interval:
                    self._last_reload = now
                    self.reload()
            except Exception:
                log.error("risk worker round failed", exc_info=True)

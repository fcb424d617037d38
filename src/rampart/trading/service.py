"""Order use cases for the API, CLI and simulator.

Changes (place, modify, cancel) go to the order engine, which commits them in batches; reads go
to the database through a read session, so they never wait for the engine's write lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from rampart.access.rls import scope_to_user
from rampart.kernel.context import RequestContext
from rampart.kernel.money import ZERO
from rampart.ledger.domain import Position
from rampart.ledger.service import LedgerService
from rampart.platform.db import Database
from rampart.trading.commands import (
    IN_PROCESS_PERMISSIONS,
    Cancel,
    CancelAll,
    CancelOpen,
    CarriedAudit,
    Command,
    ExpireDay,
    Modify,
    OrderNotFoundError,
    Place,
    PlaceResult,
)
from rampart.trading.db import FillRow, OrderRow
from rampart.trading.domain import (
    OPEN_STATUSES,
    OrderSide,
    OrderStatus,
    OrderTicket,
    fmt,
)
from rampart.trading.engine import OrderEngine
from rampart.trading.store import ORDERS, order_from_row
from rampart.venue.domain import BookSnapshot, Instrument
from rampart.venue.service import InstrumentService

MAX_PAGE = 200
#: Calendar days of fills read for day-trade dates: covers five business days.
DAY_TRADE_LOOKBACK_DAYS = 7


@dataclass(frozen=True, slots=True)
class DayActivity:
    #: Orders accepted today (rejected ones are not counted), and fills today.
    orders_today: int
    trades_today: int
    #: Quantity sold short today per symbol: open short orders in full, finished ones as filled.
    short_sold_today: dict[str, Decimal]
    #: One date per (day, symbol) both bought and sold, over the last week.
    day_trade_dates: tuple[date, ...]
    #: The P&L today's fills realised (closing parts, after the ledger's cost basis).
    realised_pnl_today: Decimal = ZERO
    #: The sides each symbol traded on today (True: bought): what a later fill makes a day trade.
    sides_today: dict[str, frozenset[bool]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


class OrderService:
    def __init__(
        self,
        db: Database,
        engine: OrderEngine,
        ledger: LedgerService,
        instruments: InstrumentService,
    ) -> None:
        self._db = db
        self.engine = engine
        self._ledger = ledger
        self._instruments = instruments

    # --- changes (through the engine) --------------------------------------------------------
    async def _await(self, command: Command) -> Any:
        return await self.engine.execute(command)

    async def place(
        self,
        user_id: str,
        actor: str,
        request: OrderTicket,
        *,
        context: RequestContext | None = None,
        carried: Sequence[CarriedAudit] = (),
        permissions: frozenset[str] = IN_PROCESS_PERMISSIONS,
        credential_id: str | None = None,
    ) -> PlaceResult:
        """Place an order; `carried` audit entries are committed with it (see `OrderEngine`).

        `permissions` and `credential_id` are the sender's, for the pre-trade checks: every
        HTTP route gives its principal's (the default is an in-process caller's)."""
        result: PlaceResult = await self._await(
            Place(user_id, actor, request, context, tuple(carried), permissions, credential_id)
        )
        return result

    async def modify(
        self,
        user_id: str,
        actor: str,
        order_id: str,
        *,
        quantity: Decimal | None = None,
        limit_price: Decimal | None = None,
        stop_price: Decimal | None = None,
        context: RequestContext | None = None,
        carried: Sequence[CarriedAudit] = (),
        permissions: frozenset[str] = IN_PROCESS_PERMISSIONS,
        credential_id: str | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._await(
            Modify(
                user_id,
                actor,
                order_id,
                quantity,
                limit_price,
                stop_price,
                context,
                tuple(carried),
                permissions,
                credential_id,
            )
        )
        return result

    async def cancel(
        self,
        user_id: str,
        actor: str,
        order_id: str,
        *,
        context: RequestContext | None = None,
        carried: Sequence[CarriedAudit] = (),
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._await(
            Cancel(user_id, actor, order_id, context, tuple(carried))
        )
        return result

    async def cancel_all(
        self,
        user_id: str,
        actor: str,
        symbol: str | None = None,
        *,
        context: RequestContext | None = None,
        carried: Sequence[CarriedAudit] = (),
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._await(
            CancelAll(user_id, actor, symbol, context, tuple(carried))
        )
        return result

    def cancel_open_orders(
        self,
        *,
        account_id: str | None = None,
        symbol: str | None = None,
        reason: str,
        actor: str = "system",
        timeout: float = 30.0,
    ) -> int:
        """Cancel every open order matching all the filters given (none: every open order on
        the platform) with the stable code `reason`; returns how many. Blocks until the
        cancellations are committed (risk's `OpenOrderCanceller`: halts, cancel-on-disconnect).
        Call it from a thread, or from async code only where blocking briefly is acceptable."""
        count: int = self.engine.call(
            CancelOpen(reason, account_id=account_id, symbol=symbol, actor=actor), timeout
        )
        return count

    def day_activity(self, session: Session, user_id: str, today: date) -> DayActivity:
        """What the account did today (UTC day), what its fills realised today and which days of
        the last week were day-trade days: the facts the risk gate's daily limits (the loss limit
        among them), Regulation SHO locates and the legacy pattern-day-trader rule read. Read
        from the database, so they survive a restart."""
        start = datetime.combine(today, time.min, tzinfo=UTC)
        end = start + timedelta(days=1)
        orders_today = session.scalar(
            select(func.count())
            .select_from(OrderRow)
            .where(
                OrderRow.user_id == user_id,
                OrderRow.created_at >= start,
                OrderRow.created_at < end,
                OrderRow.status != OrderStatus.REJECTED.value,
            )
        )
        open_statuses = {s.value for s in OPEN_STATUSES}
        short_sold: dict[str, Decimal] = {}
        for row in session.execute(
            select(
                OrderRow.symbol, OrderRow.status, OrderRow.quantity, OrderRow.filled_quantity
            ).where(
                OrderRow.user_id == user_id,
                OrderRow.side == OrderSide.SELL_SHORT.value,
                OrderRow.created_at >= start,
                OrderRow.created_at < end,
            )
        ):
            used = row.quantity if row.status in open_statuses else row.filled_quantity
            if used:
                short_sold[row.symbol] = short_sold.get(row.symbol, ZERO) + used
        # A day trade: buying and selling the same symbol on the same day. Seven calendar days
        # back covers the last five business days. Grouped in the database by day (a portable
        # CASE over the day boundaries), symbol and direction: a few rows, whatever the volume.
        days_back = case(
            *[
                (FillRow.created_at >= start - timedelta(days=k), k)
                for k in range(DAY_TRADE_LOOKBACK_DAYS + 1)
            ],
            else_=-1,
        ).label("days_back")
        bought = case((FillRow.side == OrderSide.BUY.value, 1), else_=0).label("bought")
        sides: dict[tuple[int, str], set[int]] = {}
        trades_today = 0
        for days, symbol, was_buy, count in session.execute(
            select(days_back, FillRow.symbol, bought, func.count())
            .where(
                FillRow.user_id == user_id,
                FillRow.created_at >= start - timedelta(days=DAY_TRADE_LOOKBACK_DAYS),
                FillRow.created_at < end,
            )
            .group_by(days_back, FillRow.symbol, bought)
        ):
            if days == 0:
                trades_today += int(count)
            sides.setdefault((int(days), symbol), set()).add(int(was_buy))
        day_trades = tuple(
            sorted(
                today - timedelta(days=days)
                for (days, _), seen in sides.items()
                if days >= 0 and len(seen) == 2
            )
        )
        # Summed here, not by SUM(): SQLite keeps amounts as exact decimal text, which its SUM
        # would turn into binary floats. Only closing fills realise anything, so only they are
        # read.
        realised_today = sum(
            session.scalars(
                select(FillRow.realised_pnl).where(
                    FillRow.user_id == user_id,
                    FillRow.created_at >= start,
                    FillRow.created_at < end,
                    FillRow.realised_pnl != ZERO,
                )
            ),
            ZERO,
        )
        return DayActivity(
            orders_today=int(orders_today or 0),
            trades_today=trades_today,
            short_sold_today=short_sold,
            day_trade_dates=day_trades,
            sides_today={
                symbol: frozenset(bool(b) for b in seen)
                for (days, symbol), seen in sides.items()
                if days == 0
            },
            realised_pnl_today=realised_today,
        )

    def expire_day_orders(self, actor: str = "system") -> int:
        """End of the trading day: every open day order expires."""
        count: int = self.engine.call(ExpireDay(actor))
        return count

    # --- reads -------------------------------------------------------------------------------
    def get(self, user_id: str, order_id: str) -> dict[str, Any]:
        with self._db.read() as session:
            # Row-level security on PostgreSQL: a second wall behind the owner filter.
            scope_to_user(session, user_id)
            row = session.scalar(
                select(OrderRow).where(OrderRow.id == order_id, OrderRow.user_id == user_id)
            )
            if row is None:
                raise OrderNotFoundError
            return order_from_row(row).view()

    def list_orders(
        self,
        user_id: str,
        *,
        limit: int = 50,
        before: str | None = None,
        status: str | None = None,
        symbol: str | None = None,
    ) -> Page:
        """Newest first; `before` is the cursor (an order id) of the previous page."""
        limit = max(1, min(limit, MAX_PAGE))
        # Core rows, not ORM instances: the risk gate pages through every open order of an
        # account with this on each of its reloads, inside the order engine's batches.
        stmt = select(ORDERS).where(ORDERS.c.user_id == user_id)
        if before:
            stmt = stmt.where(ORDERS.c.id < before)
        if status == "open":
            stmt = stmt.where(ORDERS.c.status.in_([s.value for s in OPEN_STATUSES]))
        elif status:
            stmt = stmt.where(ORDERS.c.status == status)
        if symbol:
            stmt = stmt.where(ORDERS.c.symbol == symbol)
        with self._db.read() as session:
            scope_to_user(session, user_id)
            rows = (
                session.connection()
                .execute(stmt.order_by(ORDERS.c.id.desc()).limit(limit + 1))
                .all()
            )
        items = [order_from_row(r).view() for r in rows[:limit]]
        return Page(items, rows[limit - 1].id if len(rows) > limit else None)

    def fills(self, user_id: str, *, limit: int = 50, before: str | None = None) -> Page:
        limit = max(1, min(limit, MAX_PAGE))
        stmt = select(FillRow).where(FillRow.user_id == user_id)
        if before:
            stmt = stmt.where(FillRow.id < before)
        with self._db.read() as session:
            scope_to_user(session, user_id)
            rows = list(session.scalars(stmt.order_by(FillRow.id.desc()).limit(limit + 1)))
        items = [
            {
                "id": r.id,
                "trade_id": r.trade_id,
                "order_id": r.order_id,
                "symbol": r.symbol,
                "side": r.side,
                "price": fmt(r.price),
                "quantity": fmt(r.quantity),
                "liquidity": r.liquidity,
                "created_at": r.created_at.isoformat(),
            }
            for r in rows[:limit]
        ]
        return Page(items, rows[limit - 1].id if len(rows) > limit else None)

    def account(self, user_id: str) -> dict[str, Any]:
        with self._db.read() as session:
            scope_to_user(session, user_id)
            cash = self._ledger.account(session, user_id)
            held = self._ledger.positions(session, user_id)
            positions = self._positions(session, user_id, held)
        market_value = sum((Decimal(p["market_value"]) for p in positions), ZERO)
        return {
            "user_id": user_id,
            "cash": fmt(cash.balance),
            # Open orders' reservations and the short positions' collateral (Regulation T, marked
            # to the last trade); buying power is cash less both, negative in a margin deficit.
            "reserved": fmt(cash.reserved),
            "short_collateral": fmt(sum((p.margin_held for p in held), ZERO)),
            "buying_power": fmt(cash.buying_power),
            "market_value": fmt(market_value),
            "equity": fmt(cash.balance + market_value),
        }

    def positions(self, user_id: str) -> list[dict[str, Any]]:
        with self._db.read() as session:
            scope_to_user(session, user_id)
            return self._positions(session, user_id)

    def _positions(
        self, session: Session, user_id: str, held: list[Position] | None = None
    ) -> list[dict[str, Any]]:
        out = []
        if held is None:
            held = self._ledger.positions(session, user_id)
        references = {i.symbol: i.reference_price for i in self.instruments()} if held else {}
        for p in held:
            # Marked at the last trade, or the reference price before the first one.
            mark = self.mark(p.symbol) or references.get(p.symbol)
            out.append(
                {
                    "symbol": p.symbol,
                    "quantity": fmt(p.quantity),
                    "average_cost": fmt(p.average_cost),
                    "cost_basis": fmt(p.cost_basis),
                    "realised_pnl": fmt(p.realised_pnl),
                    "mark_price": fmt(mark),
                    "market_value": fmt((mark or ZERO) * p.quantity),
                    "unrealised_pnl": fmt(p.unrealised_pnl(mark)),
                }
            )
        return out

    def mark(self, symbol: str) -> Decimal | None:
        snapshot = self.engine.snapshot(symbol)
        return snapshot.last_price if snapshot is not None else None

    def instruments(self) -> list[Instrument]:
        with self._db.read() as session:
            return self._instruments.listed(session)

    def book(self, symbol: str) -> BookSnapshot:
        snapshot = self.engine.snapshot(symbol)
        if snapshot is None:
            known = {i.symbol for i in self.instruments()}
            if symbol not in known:
                from rampart.venue.service import UnknownInstrumentError

                raise UnknownInstrumentError(f"No instrument {symbol[:16]!r}.")
            return BookSnapshot(symbol, (), ())
        return snapshot

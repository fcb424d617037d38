"""The order engine's batch store: everything a batch reads and writes, in one transaction.

- the epoch lock (`trading_engine_state`, `SELECT ... FOR UPDATE`; on SQLite the transaction's
  `BEGIN IMMEDIATE` write lock), and what a rebuild reads: the open orders, the short positions,
  the last trade price of each symbol;
- the batch's loads, before its commands run (`prefetch`): instruments (through the venue's
  service), cash accounts and positions (through the ledger's), orders by client order id;
- what a command reads that the batch did not load (`BatchTransaction`, the core's
  `BatchLoader`), under the command's savepoint, taken on its first statement, so that a command
  that fails takes its statements (and the row locks they took) back with it;
- the batch's write: orders, fills, journal and balances, outbox rows, audit entries, in bulk,
  and the epoch's bump.

The dialect-specific SQL of the order path is here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, SessionTransaction

from rampart.kernel.clock import utc
from rampart.ledger.domain import CLEARING_ACCOUNT, LedgerBatch
from rampart.ledger.service import LedgerService
from rampart.platform.bulk import executemany
from rampart.platform.outbox import OutboxRow
from rampart.platform.uow import UnitOfWork
from rampart.trading.batch import Batch
from rampart.trading.db import EngineStateRow, FillRow, OrderRow
from rampart.trading.domain import OPEN_STATUSES, Fill, Order, OrderSide, OrderStatus, OrderType
from rampart.trading.ports import InstrumentSource
from rampart.trading.prefetch import BatchNeeds
from rampart.trading.undo import MUTABLE_ORDER_FIELDS
from rampart.venue.domain import Instrument, TimeInForce

ORDERS: Table = OrderRow.__table__  # type: ignore[assignment]
FILLS: Table = FillRow.__table__  # type: ignore[assignment]
ENGINE_STATE: Table = EngineStateRow.__table__  # type: ignore[assignment]
OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]

#: `SqlAuditWriter.write_prepared`: appends prepared entries in the session's transaction.
WritePrepared = Callable[[Session, Sequence[Any]], int]

# Built once: run in every batch.
_LOCK_EPOCH = (
    select(ENGINE_STATE.c.epoch).where(ENGINE_STATE.c.venue == bindparam("venue")).with_for_update()
)
_BUMP_EPOCH = (
    update(ENGINE_STATE)
    .where(ENGINE_STATE.c.venue == bindparam("venue_name"))
    .values(epoch=bindparam("new_epoch"), updated_at=bindparam("now"))
)
_ORDER_COLUMNS = (
    "id",
    "user_id",
    "client_order_id",
    "symbol",
    "side",
    "type",
    "time_in_force",
    "created_at",
    *MUTABLE_ORDER_FIELDS,
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


class BatchTransaction:
    """One batch's transaction; the reads a command makes in it (`BatchLoader`) run under the
    command's savepoint."""

    def __init__(self, store: BatchStore, uow: UnitOfWork) -> None:
        self.store = store
        self.uow = uow
        self.in_command = False
        #: The savepoint of the command being run, once it has run a statement.
        self.savepoint: SessionTransaction | None = None

    def statement(self) -> None:
        """Called before a command runs a statement: its savepoint, taken on first use. Most
        commands run none (the batch loaded what they touch): they pay no savepoint."""
        if self.in_command and self.savepoint is None:
            self.savepoint = self.uow.session.begin_nested()

    def begin_command(self) -> None:
        self.in_command = True

    def end_command(self, *, ok: bool) -> bool:
        """Keep (or roll back) the command's statements; True if it had any rolled back."""
        self.in_command = False
        savepoint, self.savepoint = self.savepoint, None
        if savepoint is None:
            return False
        if ok:
            savepoint.commit()
            return False
        savepoint.rollback()
        return True

    # --- BatchLoader ---------------------------------------------------------------------------
    def accounts(self, ledger: LedgerBatch, user_ids: Iterable[str]) -> None:
        user_ids = list(user_ids)
        if user_ids:
            self.statement()
            self.store.ledger.load_accounts(self.uow, ledger, user_ids)

    def positions(self, ledger: LedgerBatch, keys: Iterable[tuple[str, str]]) -> None:
        keys = list(keys)
        if keys:
            self.statement()
            self.store.ledger.load_positions(self.uow, ledger, keys)

    def instruments(self, symbols: Collection[str]) -> dict[str, Instrument]:
        self.statement()
        return self.store.instruments.by_symbols(self.uow, symbols)

    def order_status(self, user_id: str, order_id: str) -> str | None:
        self.statement()
        row = (
            self.uow.session.connection()
            .execute(
                select(ORDERS.c.status).where(ORDERS.c.id == order_id, ORDERS.c.user_id == user_id)
            )
            .first()
        )
        return None if row is None else str(row.status)


class BatchStore:
    def __init__(
        self,
        venue_name: str,
        ledger: LedgerService,
        instruments: InstrumentSource,
        write_audit: WritePrepared | None = None,
    ) -> None:
        self.venue_name = venue_name
        self.ledger = ledger
        self.instruments = instruments
        #: With it, the batch's audit entries go in with one call, each stamped with its own
        #: request's context; without it, order events go through the unit of work.
        self.write_audit = write_audit

    def transaction(self, uow: UnitOfWork) -> BatchTransaction:
        return BatchTransaction(self, uow)

    def lock_epoch(self, tx: BatchTransaction, now: datetime) -> int:
        """Lock the venue's epoch row (created on first use); returns the epoch."""
        conn = tx.uow.session.connection()
        venue = {"venue": self.venue_name}
        epoch = conn.execute(_LOCK_EPOCH, venue).scalar()
        if epoch is None:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            conn.execute(
                insert(ENGINE_STATE).on_conflict_do_nothing(),
                [{"venue": self.venue_name, "epoch": 0, "updated_at": now}],
            )
            epoch = conn.execute(_LOCK_EPOCH, venue).scalar_one()
        return int(epoch)

    def read_open(
        self, tx: BatchTransaction
    ) -> tuple[list[Order], list[tuple[str, str]], int, dict[str, Decimal]]:
        """What a rebuild needs: the open orders (oldest first), the short positions, the
        highest order priority, and each symbol's last trade price."""
        conn = tx.uow.session.connection()
        shorts = self.ledger.short_positions(tx.uow.session)
        rows = conn.execute(
            select(ORDERS)
            .where(ORDERS.c.status.in_([s.value for s in OPEN_STATUSES]))
            .order_by(ORDERS.c.priority)
        )
        orders = [order_from_row(row) for row in rows]
        priority = int(conn.execute(select(func.max(ORDERS.c.priority))).scalar() or 0)
        last_ids = select(func.max(FILLS.c.id)).group_by(FILLS.c.symbol)
        last_prices = {
            row.symbol: row.price
            for row in conn.execute(
                select(FILLS.c.symbol, FILLS.c.price).where(FILLS.c.id.in_(last_ids))
            )
        }
        return orders, shorts, priority, last_prices

    def prefetch(self, tx: BatchTransaction, batch: Batch, needs: BatchNeeds) -> list[Order]:
        """Load what the batch will touch; returns the orders already placed with its client
        order ids."""
        wanted = [s for s in needs.symbols if s not in batch.instruments]
        if wanted:
            found = self.instruments.by_symbols(tx.uow, wanted)
            for symbol in wanted:
                batch.instruments[symbol] = found.get(symbol)
        self.ledger.load_accounts(tx.uow, batch.ledger, needs.users, system=[CLEARING_ACCOUNT])
        self.ledger.load_positions(tx.uow, batch.ledger, needs.positions)
        if not needs.client_ids:
            return []
        rows = tx.uow.session.connection().execute(
            select(ORDERS).where(
                ORDERS.c.user_id.in_({u for u, _ in needs.client_ids}),
                ORDERS.c.client_order_id.in_({c for _, c in needs.client_ids}),
            )
        )
        return [
            order_from_row(row)
            for row in rows
            if (row.user_id, row.client_order_id) in needs.client_ids
        ]

    def write(self, tx: BatchTransaction, batch: Batch, epoch: int) -> None:
        """Write what the batch changed, and bump the epoch to `epoch + 1`."""
        uow = tx.uow
        conn = uow.session.connection()
        new = [o for o in batch.orders.values() if not o.persisted]
        changed = [o for o in batch.orders.values() if o.persisted]
        if new:
            executemany(conn, ORDERS, _ORDER_COLUMNS, [_order_row(o) for o in new])
        if changed:
            executemany(
                conn, ORDERS, MUTABLE_ORDER_FIELDS, [_order_row(o) for o in changed], keys=("id",)
            )
        for order in new:
            order.persisted = True
        if batch.fills:
            executemany(conn, FILLS, _FILL_COLUMNS, [_fill_row(f) for f in batch.fills])
        self.ledger.flush(uow, batch.ledger)
        if batch.outbox:
            executemany(conn, OUTBOX, _OUTBOX_COLUMNS, batch.outbox)
        if batch.audit and self.write_audit is not None:
            self.write_audit(uow.session, batch.audit)
        for event in batch.audit_events:
            uow.audit(event)
        conn.execute(
            _BUMP_EPOCH, {"venue_name": self.venue_name, "new_epoch": epoch + 1, "now": batch.now}
        )


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


def order_from_row(row: Any) -> Order:
    """An order from a `trading_order` row."""
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

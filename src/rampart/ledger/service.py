"""Ledger use cases: deposits, loading and locking accounts for a transaction, writing a batch.

Writers lock the rows they change (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite's
`BEGIN IMMEDIATE` already serialises writers), so two processes can never both spend the same
buying power. Readers use a read session and never block writers.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import String, Table, bindparam, select, type_coerce
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.kernel.money import ZERO
from rampart.ledger.db import AccountRow, JournalEntryRow, PositionRow, PostingRow
from rampart.ledger.domain import (
    CLEARING_ACCOUNT,
    EXTERNAL_ACCOUNT,
    CashAccount,
    JournalEntry,
    LedgerBatch,
    Position,
    cash_account_id,
    deposit_amount,
)
from rampart.platform.bulk import executemany
from rampart.platform.uow import UnitOfWork

ACCOUNTS: Table = AccountRow.__table__  # type: ignore[assignment]
ENTRIES: Table = JournalEntryRow.__table__  # type: ignore[assignment]
POSTINGS: Table = PostingRow.__table__  # type: ignore[assignment]
POSITIONS: Table = PositionRow.__table__  # type: ignore[assignment]

# Built once: the order engine runs these in every batch, and building a statement (each IN
# element coerced to a bound parameter) cost more than running it.
_LOCK_ACCOUNTS = (
    select(ACCOUNTS).where(ACCOUNTS.c.id.in_(bindparam("ids", expanding=True))).with_for_update()
)
_LOCK_POSITIONS = (
    select(POSITIONS)
    .where(
        POSITIONS.c.user_id.in_(bindparam("users", expanding=True)),
        POSITIONS.c.symbol.in_(bindparam("symbols", expanding=True)),
    )
    .with_for_update()
)


def _insert_ignore(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows, skipping those whose key exists (two first uses may race)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    stmt = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    session.connection().execute(stmt.on_conflict_do_nothing(), rows)


def _position_row(position: Position, now: Any) -> dict[str, Any]:
    return {
        "user_id": position.user_id,
        "symbol": position.symbol,
        "quantity": position.quantity,
        "cost_basis": position.cost_basis,
        "realised_pnl": position.realised_pnl,
        "margin_held": position.margin_held,
        "updated_at": now,
    }


def _account(row: Any) -> CashAccount:
    return CashAccount(row.id, row.user_id, row.balance, row.reserved)


class LedgerService:
    # --- writing -----------------------------------------------------------------------------
    def load_accounts(
        self,
        uow: UnitOfWork,
        batch: LedgerBatch,
        user_ids: Iterable[str] = (),
        system: Iterable[str] = (),
    ) -> None:
        """Lock and load cash accounts (created on first use) and system accounts into `batch`."""
        wanted: dict[str, tuple[str | None, str]] = {}
        for user_id in user_ids:
            account_id = cash_account_id(user_id)
            if account_id not in batch.accounts:
                wanted[account_id] = (user_id, "cash")
        for account_id in system:
            if account_id not in batch.accounts:
                wanted[account_id] = (None, "system")
        if not wanted:
            return
        now = uow.clock.now()
        session = uow.session
        conn = session.connection()
        found = {row.id: row for row in conn.execute(_LOCK_ACCOUNTS, {"ids": list(wanted)})}
        missing = [key for key in wanted if key not in found]
        if missing:
            _insert_ignore(
                session,
                ACCOUNTS,
                [
                    {
                        "id": key,
                        "user_id": wanted[key][0],
                        "kind": wanted[key][1],
                        "balance": ZERO,
                        "reserved": ZERO,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for key in missing
                ],
            )
            found.update({row.id: row for row in conn.execute(_LOCK_ACCOUNTS, {"ids": missing})})
        for key, row in found.items():
            batch.accounts[key] = _account(row)

    def load_positions(
        self, uow: UnitOfWork, batch: LedgerBatch, keys: Iterable[tuple[str, str]]
    ) -> None:
        wanted = {k for k in keys if k not in batch.positions}
        if not wanted:
            return
        users = {u for u, _ in wanted}
        symbols = {s for _, s in wanted}
        params = {"users": list(users), "symbols": list(symbols)}
        for row in uow.session.connection().execute(_LOCK_POSITIONS, params):
            key = (row.user_id, row.symbol)
            if key in wanted:
                batch.positions[key] = Position(
                    row.user_id,
                    row.symbol,
                    row.quantity,
                    row.cost_basis,
                    row.realised_pnl,
                    row.margin_held,
                    new=False,
                )
        for key in wanted:
            if key not in batch.positions:
                batch.positions[key] = Position(key[0], key[1])

    def flush(self, uow: UnitOfWork, batch: LedgerBatch) -> None:
        """Write every change of `batch` into the unit of work's transaction."""
        now = uow.clock.now()
        conn = uow.session.connection()
        if batch.entries:
            executemany(
                conn,
                ENTRIES,
                ("id", "kind", "reference", "created_at"),
                [
                    {"id": e.id, "kind": e.kind, "reference": e.reference, "created_at": now}
                    for e in batch.entries
                ],
            )
            executemany(
                conn,
                POSTINGS,
                ("id", "entry_id", "account_id", "amount"),
                [
                    {
                        "id": new_id(),
                        "entry_id": e.id,
                        "account_id": p.account_id,
                        "amount": p.amount,
                    }
                    for e in batch.entries
                    for p in e.postings
                ],
            )
            batch.entries = []
        dirty = [a for a in batch.accounts.values() if a.dirty]
        executemany(
            conn,
            ACCOUNTS,
            ("balance", "reserved", "updated_at"),
            [
                {
                    "id": a.account_id,
                    "balance": a.balance,
                    "reserved": a.reserved,
                    "updated_at": now,
                }
                for a in dirty
            ],
            keys=("id",),
        )
        for account in dirty:
            account.dirty = False
        new = [p for p in batch.positions.values() if p.dirty and p.new]
        changed = [p for p in batch.positions.values() if p.dirty and not p.new]
        executemany(
            conn,
            POSITIONS,
            (
                "user_id",
                "symbol",
                "quantity",
                "cost_basis",
                "realised_pnl",
                "margin_held",
                "updated_at",
            ),
            [_position_row(p, now) for p in new],
        )
        executemany(
            conn,
            POSITIONS,
            ("quantity", "cost_basis", "realised_pnl", "margin_held", "updated_at"),
            [_position_row(p, now) for p in changed],
            keys=("user_id", "symbol"),
        )
        for position in new + changed:
            position.new = False
            position.dirty = False

    def deposit(
        self, uow: UnitOfWork, user_id: str, amount: object, memo: str | None = None
    ) -> CashAccount:
        """Credit a user's cash from outside the platform (an operator action, audited)."""
        value = deposit_amount(amount)
        batch = LedgerBatch()
        self.load_accounts(uow, batch, [user_id], system=[EXTERNAL_ACCOUNT])
        entry_id = new_id()
        batch.post(
            JournalEntry.transfer(
                entry_id,
                "deposit",
                (memo or "")[:80] or None,
                EXTERNAL_ACCOUNT,
                cash_account_id(user_id),
                value,
            )
        )
        self.flush(uow, batch)
        uow.audit(
            AuditEvent(
                action="ledger.deposit",
                subject=f"user:{user_id}",
                details={"amount": str(value), "entry_id": entry_id},
            )
        )
        return batch.accounts[cash_account_id(user_id)]

    # --- reading -----------------------------------------------------------------------------
    def account(self, session: Session, user_id: str) -> CashAccount:
        row = (
            session.connection()
            .execute(select(ACCOUNTS).where(ACCOUNTS.c.id == cash_account_id(user_id)))
            .first()
        )
        if row is None:
            return CashAccount(cash_account_id(user_id), user_id)
        return _account(row)

    def positions(self, session: Session, user_id: str) -> list[Position]:
        rows = session.connection().execute(
            select(POSITIONS).where(POSITIONS.c.user_id == user_id).order_by(POSITIONS.c.symbol)
        )
        return [
            Position(
                r.user_id,
                r.symbol,
                r.quantity,
                r.cost_basis,
                r.realised_pnl,
                r.margin_held,
                new=False,
            )
            for r in rows
        ]

    def short_positions(self, session: Session) -> list[tuple[str, str]]:
        """(user, symbol) of every short position: those the order engine marks to market."""
        negative = (
            type_coerce(POSITIONS.c.quantity, String()).like("-%")
            # Amounts are canonical decimal text on SQLite (`Amount`): a short's starts with "-".
            if session.get_bind().dialect.name == "sqlite"
            else POSITIONS.c.quantity < 0
        )
        rows = session.connection().execute(
            select(POSITIONS.c.user_id, POSITIONS.c.symbol).where(negative)
        )
        return [(r.user_id, r.symbol) for r in rows]

    def verify(self, session: Session) -> list[str]:
        """Every way the books could be wrong, checked from the rows (empty when sound)."""
        problems: list[str] = []
        conn = session.connection()
        sums: dict[str, Decimal] = {}
        by_entry: dict[str, Decimal] = {}
        for row in conn.execute(
            select(POSTINGS.c.entry_id, POSTINGS.c.account_id, POSTINGS.c.amount)
        ):
            sums[row.account_id] = sums.get(row.account_id, ZERO) + row.amount
            by_entry[row.entry_id] = by_entry.get(row.entry_id, ZERO) + row.amount
        for entry_id, total in by_entry.items():
            if total != 0:
                problems.append(f"entry {entry_id} does not balance: {total}")
        if sum(sums.values(), ZERO) != 0:
            problems.append("postings do not sum to zero")
        collateral: dict[str, Decimal] = {}
        for held in conn.execute(select(POSITIONS)):
            if held.margin_held < 0:
                problems.append(f"{held.user_id}/{held.symbol}: negative collateral")
            elif held.margin_held > 0 and held.quantity >= 0:
                problems.append(f"{held.user_id}/{held.symbol}: collateral held for a long/flat")
            account_id = cash_account_id(held.user_id)
            collateral[account_id] = collateral.get(account_id, ZERO) + held.margin_held
        for row in conn.execute(select(ACCOUNTS)):
            if row.balance != sums.get(row.id, ZERO):
                problems.append(f"{row.id}: balance {row.balance} != postings {sums.get(row.id)}")
            if row.reserved < 0:
                problems.append(f"{row.id}: negative reservation {row.reserved}")
            if row.kind == "cash" and row.balance < 0:
                problems.append(f"{row.id}: negative cash {row.balance}")
            margin = collateral.get(row.id, ZERO)
            if row.reserved < margin:
                problems.append(f"{row.id}: reserved {row.reserved} < collateral {margin}")
            # Open orders' reservations are always covered by cash; a short's collateral may
            # exceed it after a price rise (a margin deficit, not a bookkeeping error).
            if row.kind == "cash" and row.reserved - margin > row.balance:
                problems.append(
                    f"{row.id}: reserved for orders {row.reserved - margin} > balance {row.balance}"
                )
        clearing = sums.get(CLEARING_ACCOUNT, ZERO)
        if clearing != 0:
            problems.append(f"clearing account holds {clearing} after settlement")
        return problems

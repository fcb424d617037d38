"""Ledger tables: accounts with their balances, journal entries, postings and positions.

`ledger_account.balance` is a running total kept in the same transaction as the postings that
change it, so reading buying power is one row; `LedgerService.verify` proves it equals the sum of
the postings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from rampart.platform.base import Amount, Base, UTCDateTime


class AccountRow(Base):
    __tablename__ = "ledger_account"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True, unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    balance: Mapped[Decimal] = mapped_column(Amount())
    reserved: Mapped[Decimal] = mapped_column(Amount())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JournalEntryRow(Base):
    __tablename__ = "ledger_journal_entry"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PostingRow(Base):
    __tablename__ = "ledger_posting"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("ledger_journal_entry.id"))
    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_account.id"))
    amount: Mapped[Decimal] = mapped_column(Amount())

    __table_args__ = (Index("ix_ledger_posting_account", "account_id"),)


class PositionRow(Base):
    __tablename__ = "ledger_position"

    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    quantity: Mapped[Decimal] = mapped_column(Amount())
    cost_basis: Mapped[Decimal] = mapped_column(Amount())
    realised_pnl: Mapped[Decimal] = mapped_column(Amount())
    #: Cash of the account held against a short position (part of the account's `reserved`).
    margin_held: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

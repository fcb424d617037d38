"""Risk tables: limits, trading states, halts, regulator notifications, the restricted list,
locates, cancel-on-disconnect registrations, and the risk event log compliance queries."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rampart.platform.base import Amount, Base, UTCDateTime


class RiskLimitRow(Base):
    """Limit overrides of one scope: `platform` (over the configured defaults) or
    `account:<id>`. Only the limits given are stored; the rest are inherited."""

    __tablename__ = "risk_limit"

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    #: Limit name -> decimal string.
    limits: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(100))


class TradingStateRow(Base):
    """The trading state of `platform` or `account:<id>`; no row means ACTIVE."""

    __tablename__ = "risk_trading_state"

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    changed_by: Mapped[str] = mapped_column(String(100))


class HaltRow(Base):
    """A halt of the whole market, one symbol or one account. Never deleted: a resumed halt
    stays as the record of who stopped trading, why, and who (two people) resumed it."""

    __tablename__ = "risk_halt"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    scope: Mapped[str] = mapped_column(String(16))
    #: The symbol or account id; `*` for a market-wide halt.
    target: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    halted_by: Mapped[str] = mapped_column(String(100))
    halted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resume_requested_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resume_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resume_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    resumed_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_risk_halt_status", "status", "scope", "target"),)


class RegulatorNotificationRow(Base):
    """What the firm must tell its regulator about a halt or its end, kept for the filing."""

    __tablename__ = "risk_regulator_notification"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    halt_id: Mapped[str] = mapped_column(String(36))
    event: Mapped[str] = mapped_column(String(16))
    regulator: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_risk_regulator_notification_halt", "halt_id"),)


class RestrictedSecurityRow(Base):
    __tablename__ = "risk_restricted_security"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LocateRow(Base):
    """A recorded borrow (Regulation SHO locate) for short sales on one trading day."""

    __tablename__ = "risk_locate"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(100))
    symbol: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[Decimal] = mapped_column(Amount())
    #: Who lends: the stock-loan desk's or lender's reference.
    source: Mapped[str] = mapped_column(String(200))
    trade_date: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(100))

    __table_args__ = (Index("ix_risk_locate_account", "account_id", "symbol", "trade_date"),)


class CancelOnDisconnectRow(Base):
    """A session or API key whose open orders are cancelled when its stream connection drops."""

    __tablename__ = "risk_cancel_on_disconnect"

    credential_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(100))
    enabled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    enabled_by: Mapped[str] = mapped_column(String(100))


class RiskEventRow(Base):
    """One risk event: a rejection, a halt, a resume, a limit or state change."""

    __tablename__ = "risk_event"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    symbol: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor: Mapped[str] = mapped_column(String(100))
    detail: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_risk_event_time", "occurred_at"),
        Index("ix_risk_event_account", "account_id", "occurred_at"),
        Index("ix_risk_event_kind", "kind", "occurred_at"),
    )


class ControlsVersionRow(Base):
    """One row (`id` 1) counting changes to halts, states, limits, bands and the restricted
    list: each process compares it before every batch of orders and reloads on a change, so a
    change made anywhere (another server, the CLI) applies to the next order."""

    __tablename__ = "risk_controls_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PriceBandRow(Base):
    """An instrument's own price band (limit-up/limit-down style): the band's width in percent
    of the moving reference price, and the window the reference is averaged over. A field left
    empty takes the platform default (`risk.price_band_percent`, `..._window_seconds`)."""

    __tablename__ = "risk_price_band"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    band_percent: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    window_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(100))

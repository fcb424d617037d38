"""Trading tables: orders, fills, and the engine's epoch row."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from rampart.platform.base import Amount, Base, UTCDateTime


class OrderRow(Base):
    __tablename__ = "trading_order"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    client_order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    symbol: Mapped[str] = mapped_column(String(16))
    side: Mapped[str] = mapped_column(String(12))
    type: Mapped[str] = mapped_column(String(12))
    time_in_force: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Amount())
    limit_price: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    stop_price: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    filled_quantity: Mapped[Decimal] = mapped_column(Amount())
    filled_notional: Mapped[Decimal] = mapped_column(Amount())
    reserved: Mapped[Decimal] = mapped_column(Amount())
    priority: Mapped[int] = mapped_column(BigInteger)
    triggered: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        # A retry with the same client_order_id finds the first order; never a second one.
        UniqueConstraint("user_id", "client_order_id", name="uq_trading_order_client_order_id"),
        Index("ix_trading_order_user", "user_id", "id"),
        Index("ix_trading_order_open", "status"),
    )


class FillRow(Base):
    __tablename__ = "trading_fill"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    trade_id: Mapped[str] = mapped_column(String(36))
    order_id: Mapped[str] = mapped_column(String(36))
    user_id: Mapped[str] = mapped_column(String(36))
    symbol: Mapped[str] = mapped_column(String(16))
    side: Mapped[str] = mapped_column(String(12))
    price: Mapped[Decimal] = mapped_column(Amount())
    quantity: Mapped[Decimal] = mapped_column(Amount())
    liquidity: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: What the fill realised on the position (trading_0002); zero for fills written before it.
    realised_pnl: Mapped[Decimal] = mapped_column(Amount(), default=Decimal(0), server_default="0")

    __table_args__ = (
        Index("ix_trading_fill_order", "order_id"),
        Index("ix_trading_fill_user", "user_id", "id"),
    )


class EngineStateRow(Base):
    """One row per venue: `epoch` counts committed engine batches.

    A batch locks this row first. If the epoch is not the one this process last wrote, another
    process changed orders in between, and the engine rebuilds its books before matching.
    """

    __tablename__ = "trading_engine_state"

    venue: Mapped[str] = mapped_column(String(32), primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

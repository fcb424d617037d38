"""Venue tables: the instruments that can be traded."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from rampart.platform.base import Amount, Base, UTCDateTime


class InstrumentRow(Base):
    __tablename__ = "venue_instrument"

    symbol: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tick_size: Mapped[Decimal] = mapped_column(Amount())
    lot_size: Mapped[Decimal] = mapped_column(Amount())
    status: Mapped[str] = mapped_column(String(16))
    reference_price: Mapped[Decimal] = mapped_column(Amount())
    easy_to_borrow: Mapped[bool] = mapped_column(Boolean)
    threshold_security: Mapped[bool] = mapped_column(Boolean)
    #: Per-instrument bounds at order entry (venue_0002); NULL: the platform's only.
    max_quantity: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    max_price: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    min_price: Mapped[Decimal | None] = mapped_column(Amount(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

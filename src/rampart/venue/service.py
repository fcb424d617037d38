"""Instruments: listing, creating and changing their trading status."""

from __future__ import annotations

import re
from collections.abc import Collection
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from rampart.kernel.errors import NotFoundError, ValidationError
from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork
from rampart.venue.db import InstrumentRow
from rampart.venue.domain import Instrument, InstrumentStatus

SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,15}$")


class UnknownInstrumentError(NotFoundError):
    code = "unknown-instrument"
    title = "No such instrument"


class InvalidInstrumentError(ValidationError):
    code = "invalid-instrument"
    title = "The instrument definition is not valid"


def to_instrument(row: Any) -> Instrument:
    """An instrument from an `InstrumentRow` or a `venue_instrument` result row."""
    return Instrument(
        symbol=row.symbol,
        name=row.name,
        tick_size=row.tick_size,
        lot_size=row.lot_size,
        status=InstrumentStatus(row.status),
        reference_price=row.reference_price,
        easy_to_borrow=row.easy_to_borrow,
        threshold_security=row.threshold_security,
        max_quantity=row.max_quantity,
        max_price=row.max_price,
        min_price=row.min_price,
    )


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def check_symbol(symbol: str) -> None:
    if not SYMBOL.match(symbol):
        raise InvalidInstrumentError("Symbols are 1-16 capital letters, digits or dots.")


def definition_event(instrument: Instrument) -> AuditEvent:
    """The audit entry of an instrument's (re)definition."""
    return AuditEvent(
        action="instrument.defined",
        subject=f"instrument:{instrument.symbol}",
        details={
            "tick_size": str(instrument.tick_size),
            "lot_size": str(instrument.lot_size),
            "status": instrument.status.value,
            "max_quantity": _text(instrument.max_quantity),
            "max_price": _text(instrument.max_price),
            "min_price": _text(instrument.min_price),
        },
    )


def status_event(symbol: str, before: str, after: InstrumentStatus) -> AuditEvent:
    return AuditEvent(
        action="instrument.status.changed",
        subject=f"instrument:{symbol}",
        details={"from": before, "to": after.value},
    )


#: Built once: run in every order-engine batch that meets a symbol it has not loaded.
_BY_SYMBOLS = select(InstrumentRow.__table__).where(
    InstrumentRow.__table__.c.symbol.in_(bindparam("symbols", expanding=True))
)


class InstrumentService:
    def by_symbols(self, uow: UnitOfWork, symbols: Collection[str]) -> dict[str, Instrument]:
        """The listed instruments among `symbols` (the order engine's read, once per batch)."""
        if not symbols:
            return {}
        rows = uow.session.connection().execute(_BY_SYMBOLS, {"symbols": list(symbols)})
        return {row.symbol: to_instrument(row) for row in rows}

    def all(self, uow: UnitOfWork) -> list[Instrument]:
        return self.listed(uow.session)

    def listed(self, session: Session) -> list[Instrument]:
        """Every instrument, by symbol, read in `session` (a unit of work's or a read one)."""
        rows = session.scalars(select(InstrumentRow).order_by(InstrumentRow.symbol))
        return [to_instrument(r) for r in rows]

    def get(self, uow: UnitOfWork, symbol: str) -> Instrument:
        row = uow.session.get(InstrumentRow, symbol)
        if row is None:
            raise UnknownInstrumentError(f"No instrument {symbol[:16]!r}.")
        return to_instrument(row)

    def upsert(self, uow: UnitOfWork, instrument: Instrument) -> Instrument:
        """Create or redefine an instrument (an operator action, audited)."""
        check_symbol(instrument.symbol)
        now = uow.clock.now()
        row = uow.session.get(InstrumentRow, instrument.symbol)
        if row is None:
            row = InstrumentRow(symbol=instrument.symbol, created_at=now)
            uow.session.add(row)
        row.name = instrument.name[:200]
        row.tick_size = instrument.tick_size
        row.lot_size = instrument.lot_size
        row.status = instrument.status.value
        row.reference_price = instrument.reference_price
        row.easy_to_borrow = instrument.easy_to_borrow
        row.threshold_security = instrument.threshold_security
        row.max_quantity = instrument.max_quantity
        row.max_price = instrument.max_price
        row.min_price = instrument.min_price
        row.updated_at = now
        uow.audit(definition_event(instrument))
        return instrument

    def set_status(self, uow: UnitOfWork, symbol: str, status: InstrumentStatus) -> Instrument:
        row = uow.session.get(InstrumentRow, symbol)
        if row is None:
            raise UnknownInstrumentError(f"No instrument {symbol[:16]!r}.")
        before = row.status
        row.status = status.value
        row.updated_at = uow.clock.now()
        uow.audit(status_event(symbol, before, status))
        return to_instrument(row)


DEMO_INSTRUMENTS = [
    Instrument(
        "ACME",
        "Acme Corp",
        Decimal("0.01"),
        Decimal("1"),
        InstrumentStatus.ACTIVE,
        Decimal("100.00"),
    ),
    Instrument(
        "GLOBX",
        "Globex Industries",
        Decimal("0.01"),
        Decimal("1"),
        InstrumentStatus.ACTIVE,
        Decimal("42.50"),
    ),
    Instrument(
        "INTK", "Initech", Decimal("0.01"), Decimal("1"), InstrumentStatus.ACTIVE, Decimal("18.20")
    ),
]

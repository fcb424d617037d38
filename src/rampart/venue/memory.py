"""`InstrumentCatalog` in memory, for service tests that need instruments without a database."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from rampart.kernel.events import AuditEvent
from rampart.venue.domain import Instrument, InstrumentStatus
from rampart.venue.service import (
    UnknownInstrumentError,
    check_symbol,
    definition_event,
    status_event,
)


class _Transaction(Protocol):
    def audit(self, event: AuditEvent) -> None: ...


class InMemoryInstruments:
    """Changes apply at once (a rolled-back operator action is not modelled: the catalog's
    readers only ever see committed definitions in the tests that use this)."""

    def __init__(self, instruments: list[Instrument] | None = None) -> None:
        self._by_symbol = {i.symbol: i for i in instruments or []}

    def all(self, uow: object) -> list[Instrument]:
        return [self._by_symbol[s] for s in sorted(self._by_symbol)]

    def get(self, uow: object, symbol: str) -> Instrument:
        instrument = self._by_symbol.get(symbol)
        if instrument is None:
            raise UnknownInstrumentError(f"No instrument {symbol[:16]!r}.")
        return instrument

    def upsert(self, uow: _Transaction, instrument: Instrument) -> Instrument:
        check_symbol(instrument.symbol)
        self._by_symbol[instrument.symbol] = replace(instrument, name=instrument.name[:200])
        uow.audit(definition_event(instrument))
        return instrument

    def set_status(self, uow: _Transaction, symbol: str, status: InstrumentStatus) -> Instrument:
        before = self.get(uow, symbol)
        self._by_symbol[symbol] = changed = replace(before, status=status)
        uow.audit(status_event(symbol, before.status.value, status))
        return changed

"""What other domains need of the venue, as an interface.

`InstrumentCatalog`: the instruments that can be traded, read by trading, risk and the
simulator, defined and halted by operators. Implemented by
`rampart.venue.service.InstrumentService` (SQL) and `rampart.venue.memory.InMemoryInstruments`;
`tests/venue/test_instrument_catalog_contract.py` holds both to the same behaviour.
"""

from __future__ import annotations

from typing import Protocol

from rampart.platform.uow import UnitOfWork
from rampart.venue.domain import Instrument, InstrumentStatus


class InstrumentCatalog(Protocol):
    def all(self, uow: UnitOfWork) -> list[Instrument]:
        """Every instrument, by symbol."""
        ...

    def get(self, uow: UnitOfWork, symbol: str) -> Instrument:
        """The instrument; `UnknownInstrumentError` when there is none."""
        ...

    def upsert(self, uow: UnitOfWork, instrument: Instrument) -> Instrument:
        """Create or redefine an instrument (audited); `InvalidInstrumentError` for a symbol
        that is not 1-16 capital letters, digits or dots."""
        ...

    def set_status(self, uow: UnitOfWork, symbol: str, status: InstrumentStatus) -> Instrument:
        """Halt, restrict or reopen trading in an instrument (audited)."""
        ...

"""`InstrumentCatalog`: the SQL catalog and the in-memory one behave the same for their users."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from rampart.venue.domain import Instrument, InstrumentStatus
from rampart.venue.memory import InMemoryInstruments
from rampart.venue.ports import InstrumentCatalog
from rampart.venue.service import InvalidInstrumentError, UnknownInstrumentError
from tests.support.ports import PortBackend

ACME = Instrument(
    "ACME", "Acme Corp", Decimal("0.01"), Decimal("1"), InstrumentStatus.ACTIVE, Decimal("100")
)


@pytest.fixture
def catalog(port_backend: PortBackend) -> InstrumentCatalog:
    return InMemoryInstruments() if port_backend.in_memory else port_backend.app.instruments


def _define(port_backend: PortBackend, catalog: InstrumentCatalog, instrument: Instrument) -> None:
    with port_backend.uow() as uow:
        catalog.upsert(uow, instrument)
        uow.commit()


def test_defined_instruments_are_listed_by_symbol_and_found_by_it(
    port_backend: PortBackend, catalog: InstrumentCatalog
) -> None:
    _define(port_backend, catalog, replace(ACME, symbol="ZED", max_price=Decimal("500")))
    _define(port_backend, catalog, ACME)
    with port_backend.uow() as uow:
        assert [i.symbol for i in catalog.all(uow)] == ["ACME", "ZED"]
        assert catalog.get(uow, "ACME") == ACME
        assert catalog.get(uow, "ZED").max_price == Decimal("500")


def test_redefining_an_instrument_replaces_its_terms(
    port_backend: PortBackend, catalog: InstrumentCatalog
) -> None:
    _define(port_backend, catalog, ACME)
    _define(port_backend, catalog, replace(ACME, tick_size=Decimal("0.05"), name="Acme"))
    with port_backend.uow() as uow:
        got = catalog.get(uow, "ACME")
        assert (got.tick_size, got.name) == (Decimal("0.05"), "Acme")
        assert len(catalog.all(uow)) == 1


def test_an_unknown_symbol_is_not_found(
    port_backend: PortBackend, catalog: InstrumentCatalog
) -> None:
    with port_backend.uow() as uow:
        with pytest.raises(UnknownInstrumentError):
            catalog.get(uow, "NOPE")
        with pytest.raises(UnknownInstrumentError):
            catalog.set_status(uow, "NOPE", InstrumentStatus.HALTED)


@pytest.mark.parametrize("symbol", ["acme", "", "A" * 17, "AC ME", "ACME\x00"])
def test_a_malformed_symbol_is_refused(
    port_backend: PortBackend, catalog: InstrumentCatalog, symbol: str
) -> None:
    with port_backend.uow() as uow, pytest.raises(InvalidInstrumentError):
        catalog.upsert(uow, replace(ACME, symbol=symbol))


def test_a_halt_changes_the_status_and_nothing_else(
    port_backend: PortBackend, catalog: InstrumentCatalog
) -> None:
    _define(port_backend, catalog, ACME)
    with port_backend.uow() as uow:
        halted = catalog.set_status(uow, "ACME", InstrumentStatus.HALTED)
        uow.commit()
    assert halted == replace(ACME, status=InstrumentStatus.HALTED)
    with port_backend.uow() as uow:
        assert catalog.get(uow, "ACME") == halted

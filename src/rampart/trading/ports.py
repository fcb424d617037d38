"""What the order engine's core needs from outside it, as interfaces.

- `PreTradeCheck` and its `PreTradeContext`: the risk gate's seam. They are declared in
  `rampart.risk.ports`, the layer below trading, so that both sides import one typed object;
  re-exported here for the code that wires trading (the composition root, `bootstrap.py`).
- `BatchLoader`: what the core reads during a batch that the batch did not load beforehand (a
  maker's account met in matching, an instrument a modification needs, the status of an order
  that is not open). The store (`rampart.trading.store`) implements it inside the batch's
  transaction; the core never sees a session.
- `InstrumentSource`: the instruments of the venue, read through the venue's service (trading
  does not read the venue's tables).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Protocol

from rampart.ledger.domain import LedgerBatch
from rampart.risk.ports import CheckedOrder, PreTradeCheck, PreTradeContext
from rampart.venue.domain import Instrument

if TYPE_CHECKING:
    from rampart.platform.uow import UnitOfWork


class BatchLoader(Protocol):
    def accounts(self, ledger: LedgerBatch, user_ids: Iterable[str]) -> None:
        """Load (and lock) these users' cash accounts into `ledger`."""
        ...

    def positions(self, ledger: LedgerBatch, keys: Iterable[tuple[str, str]]) -> None:
        """Load (and lock) these (user, symbol) positions into `ledger`."""
        ...

    def instruments(self, symbols: Collection[str]) -> dict[str, Instrument]:
        """The listed instruments among `symbols` (an unlisted one is left out)."""
        ...

    def order_status(self, user_id: str, order_id: str) -> str | None:
        """The status of the user's order, or None when the user has no such order."""
        ...


class InstrumentSource(Protocol):
    def by_symbols(self, uow: UnitOfWork, symbols: Collection[str]) -> dict[str, Instrument]:
        """The listed instruments among `symbols`, read in `uow`'s transaction."""
        ...


__all__ = [
    "BatchLoader",
    "CheckedOrder",
    "InstrumentSource",
    "PreTradeCheck",
    "PreTradeContext",
]

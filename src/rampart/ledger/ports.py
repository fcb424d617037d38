"""What other domains need of the ledger, as an interface.

`CashLedger` is the ledger as its readers and funders see it: a user's cash account (balance,
reserved, buying power), their positions, and deposits from outside the platform. The order
engine's batch writes (`LedgerService.load_accounts` / `flush`) are the trading store's own
business and stay off this port.

Implemented by `rampart.ledger.service.LedgerService` (SQL) and
`rampart.ledger.memory.InMemoryLedger`; `tests/ledger/test_cash_ledger_contract.py` holds both
to the same behaviour.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session

from rampart.ledger.domain import CashAccount, Position
from rampart.platform.uow import UnitOfWork


class CashLedger(Protocol):
    def deposit(
        self, uow: UnitOfWork, user_id: str, amount: object, memo: str | None = None
    ) -> CashAccount:
        """Credit cash from outside the platform: positive whole cents (`InvalidAmountError`
        otherwise), audited as `ledger.deposit`, visible once `uow` commits."""
        ...

    def account(self, session: Session, user_id: str) -> CashAccount:
        """The user's cash account; an empty one for a user who never had money."""
        ...

    def positions(self, session: Session, user_id: str) -> list[Position]:
        """The user's positions, by symbol."""
        ...

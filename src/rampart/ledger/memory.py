"""`CashLedger` in memory, for service tests that need cash without a database."""

from __future__ import annotations

from dataclasses import replace

from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.ledger.domain import CashAccount, Position, cash_account_id, deposit_amount
from rampart.platform.memory import Transaction


class InMemoryLedger:
    def __init__(self) -> None:
        self._accounts: dict[str, CashAccount] = {}
        self._positions: dict[tuple[str, str], Position] = {}

    def deposit(
        self, uow: Transaction, user_id: str, amount: object, memo: str | None = None
    ) -> CashAccount:
        value = deposit_amount(amount)
        entry_id = new_id()
        account = self.account(None, user_id)
        credited = replace(account, balance=account.balance + value, dirty=False)

        def apply() -> None:
            # Added to the balance at commit time, not replaced: two deposits of one
            # transaction, or of two, both count.
            current = self.account(None, user_id)
            current.balance += value
            self._accounts[user_id] = current

        uow.after_commit(apply)
        uow.audit(
            AuditEvent(
                action="ledger.deposit",
                subject=f"user:{user_id}",
                details={"amount": str(value), "entry_id": entry_id},
            )
        )
        return credited

    def account(self, session: object, user_id: str) -> CashAccount:
        account = self._accounts.get(user_id)
        if account is None:
            return CashAccount(cash_account_id(user_id), user_id)
        return replace(account)

    def positions(self, session: object, user_id: str) -> list[Position]:
        held = [p for (owner, _), p in self._positions.items() if owner == user_id]
        return [replace(p) for p in sorted(held, key=lambda p: p.symbol)]

    def set_position(self, position: Position) -> None:
        """Give a user a position (what a fill would have left), for tests of its readers."""
        self._positions[(position.user_id, position.symbol)] = replace(position, new=False)

"""`CashLedger`: the SQL ledger and the in-memory one behave the same for their users."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rampart.ledger.domain import InvalidAmountError
from rampart.ledger.memory import InMemoryLedger
from rampart.ledger.ports import CashLedger
from tests.support.ports import PortBackend


@pytest.fixture
def ledger(port_backend: PortBackend) -> CashLedger:
    return InMemoryLedger() if port_backend.in_memory else port_backend.app.ledger


def _deposit(port_backend: PortBackend, ledger: CashLedger, user: str, amount: object) -> None:
    with port_backend.uow() as uow:
        ledger.deposit(uow, user, amount)
        uow.commit()


def test_a_user_who_never_had_money_has_an_empty_account(
    port_backend: PortBackend, ledger: CashLedger
) -> None:
    with port_backend.read() as session:
        account = ledger.account(session, "u-new")
        assert (account.user_id, account.balance, account.reserved) == ("u-new", 0, 0)
        assert account.buying_power == 0
        assert ledger.positions(session, "u-new") == []


def test_deposits_add_up_and_stay_with_their_owner(
    port_backend: PortBackend, ledger: CashLedger
) -> None:
    _deposit(port_backend, ledger, "u-1", "100.25")
    _deposit(port_backend, ledger, "u-1", 50)
    _deposit(port_backend, ledger, "u-2", "1.00")
    with port_backend.read() as session:
        assert ledger.account(session, "u-1").balance == Decimal("150.25")
        assert ledger.account(session, "u-1").buying_power == Decimal("150.25")
        assert ledger.account(session, "u-2").balance == Decimal("1.00")


def test_a_deposit_whose_transaction_is_not_committed_credits_nothing(
    port_backend: PortBackend, ledger: CashLedger
) -> None:
    with port_backend.uow() as uow:
        credited = ledger.deposit(uow, "u-1", "10.00")
        assert credited.balance == Decimal("10.00")
    with port_backend.read() as session:
        assert ledger.account(session, "u-1").balance == 0


@pytest.mark.parametrize("amount", [0.1, "-5", "0", "0.001", "100000000.01", "ten", True])
def test_an_invalid_deposit_is_refused_and_credits_nothing(
    port_backend: PortBackend, ledger: CashLedger, amount: object
) -> None:
    with port_backend.uow() as uow, pytest.raises(InvalidAmountError):
        ledger.deposit(uow, "u-1", amount)
    with port_backend.read() as session:
        assert ledger.account(session, "u-1").balance == 0

"""A user's cash statement (`LedgerService.cash_activity`): their own movements only, newest
first, signed, and paged by a cursor with a bounded page size."""

from __future__ import annotations

from decimal import Decimal

from rampart.bootstrap import Container


def _deposit(container: Container, user: str, amount: str, memo: str) -> None:
    with container.uow() as uow:
        container.ledger.deposit(uow, user, amount, memo)
        uow.commit()


def test_the_statement_is_the_users_own_newest_first_and_paged(container: Container) -> None:
    for n in range(1, 6):
        _deposit(container, "u-statement", str(n * 1000), f"deposit {n}")
    _deposit(container, "u-other", "777", "not theirs")

    with container.db.read() as session:
        lines, cursor = container.ledger.cash_activity(session, "u-statement", limit=3)
        assert [line.reference for line in lines] == ["deposit 5", "deposit 4", "deposit 3"]
        assert [line.amount for line in lines] == [Decimal(5000), Decimal(4000), Decimal(3000)]
        assert {line.kind for line in lines} == {"deposit"}
        assert cursor is not None
        rest, end = container.ledger.cash_activity(session, "u-statement", limit=3, before=cursor)
        assert [line.reference for line in rest] == ["deposit 2", "deposit 1"]
        assert end is None
        # A huge page size is clamped, not refused.
        everything, _ = container.ledger.cash_activity(session, "u-statement", limit=10**9)
        assert len(everything) == 5
        assert container.ledger.cash_activity(session, "u-nobody") == ([], None)

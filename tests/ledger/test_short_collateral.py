"""The collateral a short position holds: part of the account's reservations, never negative,
always the rule's figure after any sequence of fills, and checked by `LedgerService.verify`."""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from rampart.bootstrap import Container
from rampart.ledger.db import PositionRow
from rampart.ledger.domain import (
    EXTERNAL_ACCOUNT,
    CashAccount,
    JournalEntry,
    LedgerBatch,
    Position,
    cash_account_id,
    short_collateral,
)

RATE = D("0.50")


def test_the_rule_is_150_percent_of_a_shorts_value_rounded_up() -> None:
    assert short_collateral(D(-10), D("98"), RATE) == D("1470")
    assert short_collateral(D("-0.00000001"), D(1), RATE) == D("0.00000002")  # 1.5e-8 up
    assert short_collateral(D(10), D("98"), RATE) == 0
    assert short_collateral(D(0), D("98"), RATE) == 0


FILLS = st.lists(
    st.tuples(st.booleans(), st.integers(1, 50), st.integers(1, 100_000)), min_size=1, max_size=40
)


@given(fills=FILLS)
def test_after_any_fills_the_collateral_is_the_rules_and_reservations_never_go_negative(
    fills: list[tuple[bool, int, int]],
) -> None:
    account = CashAccount("cash:t", "t", balance=D(1_000_000))
    position = Position("t", "ACME")
    for buy, quantity, cents in fills:
        price = D(cents) / 100
        position.apply_fill(buy, D(quantity), price)
        account.hold_for(position, short_collateral(position.quantity, price, RATE))
        assert account.reserved >= 0
        assert position.margin_held >= 0
        assert account.reserved == position.margin_held
        assert position.margin_held == short_collateral(position.quantity, price, RATE)


def _short(container: Container, user: str, held: D) -> None:
    """A short position holding `held`, written through a ledger batch as the engine does."""
    with container.uow() as uow:
        batch = LedgerBatch()
        container.ledger.load_accounts(uow, batch, [user], system=[EXTERNAL_ACCOUNT])
        container.ledger.load_positions(uow, batch, [(user, "ACME")])
        batch.post(
            JournalEntry.transfer(
                "e-" + user, "deposit", None, EXTERNAL_ACCOUNT, cash_account_id(user), D(1000)
            )
        )
        position = batch.positions[(user, "ACME")]
        position.apply_fill(False, D(10), D(100))
        batch.accounts[cash_account_id(user)].hold_for(position, held)
        container.ledger.flush(uow, batch)
        uow.commit()


def test_verify_accepts_a_deficit_but_not_collateral_the_reservations_miss(
    container: Container,
) -> None:
    # 1,500 held against 1,000 of cash: a margin deficit after a price rise, books still sound.
    _short(container, "deficit", D(1500))
    with container.db.read() as session:
        assert container.ledger.verify(session) == []
        account = container.ledger.account(session, "deficit")
    assert account.buying_power == D(-500)
    # Collateral the account's reservations do not include would mint buying power: caught.
    with container.uow() as uow:
        uow.session.execute(
            update(PositionRow).where(PositionRow.user_id == "deficit").values(margin_held=D(2000))
        )
        uow.commit()
    with container.db.read() as session:
        problems = container.ledger.verify(session)
    assert any("collateral" in p for p in problems), problems


def test_verify_refuses_collateral_on_a_long_position(container: Container) -> None:
    _short(container, "longy", D(1500))
    with container.uow() as uow:
        uow.session.execute(
            update(PositionRow).where(PositionRow.user_id == "longy").values(quantity=D(10))
        )
        uow.commit()
    with container.db.read() as session:
        problems = container.ledger.verify(session)
    assert any("long/flat" in p for p in problems), problems

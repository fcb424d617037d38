"""Helpers for trading tests: a header authenticator, instruments, funding, invariants."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

import pyotp
from sqlalchemy import select
from starlette.requests import HTTPConnection

from rampart.access.domain import Principal, Role, permissions_for
from rampart.bootstrap import Container
from rampart.identity.db import UserRow
from rampart.ledger.db import AccountRow, PositionRow
from rampart.ledger.domain import short_collateral
from rampart.trading.db import EngineStateRow, FillRow, OrderRow
from rampart.trading.domain import OPEN_STATUSES, OrderSide, OrderTicket, OrderType
from rampart.trading.engine import Place, PlaceResult
from rampart.venue.domain import Instrument, InstrumentStatus, TimeInForce

TEST_HEADER = "x-test-user"


class HeaderAuthenticator:
    """Tests only: the user named by a header, as a trader. Never wired outside tests."""

    def __init__(self, permissions: frozenset[str] | None = None) -> None:
        self.permissions = permissions or permissions_for({Role.TRADER})

    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        user = conn.headers.get(TEST_HEADER)
        if not user:
            return None
        return Principal(
            actor=f"user:{user}",
            user_id=user,
            roles=frozenset({Role.TRADER}),
            permissions=self.permissions,
            method="bearer",
            credential_id=f"test:{user}",
        )


ACME = Instrument(
    "ACME", "Acme Corp", Decimal("0.01"), Decimal("1"), InstrumentStatus.ACTIVE, Decimal("100.00")
)
FRAC = Instrument(
    "FRAC",
    "Fractional",
    Decimal("0.01"),
    Decimal("0.001"),
    InstrumentStatus.ACTIVE,
    Decimal("10.00"),
)
HTB = Instrument(
    "HTB",
    "Hard to borrow",
    Decimal("0.01"),
    Decimal("1"),
    InstrumentStatus.ACTIVE,
    Decimal("5.00"),
    easy_to_borrow=False,
)


def seed(container: Container, *instruments: Instrument) -> None:
    with container.uow() as uow:
        for instrument in instruments or (ACME, FRAC, HTB):
            container.instruments.upsert(uow, instrument)
        uow.commit()


def open_account(
    container: Container, user: str, *, verified: bool = True, mfa: bool = True
) -> str:
    """Make `user` a trading account that passes the full pre-trade checks: an active identity
    account with a verified address and an authenticator app (TOTP) enrolled through the MFA
    service. Idempotent. Pass `verified=False` or `mfa=False` to test those refusals.

    The identity row is written directly (with no password, so nobody can sign in as it) only
    so that tests may keep readable fixed ids such as "alice"; the second factor goes through
    the real MFA service."""
    with container.uow() as uow:
        fresh = uow.session.get(UserRow, user) is None
        if fresh:
            now = container.clock.now()
            row = UserRow(
                id=user,
                email_verified_at=now if verified else None,
                password_hash=None,
                status="active",
                created_at=now,
                updated_at=now,
            )
            container.identity.accounts.set_email(uow.session, row, f"{user}@trading-tests.invalid")
            uow.session.add(row)
            uow.session.flush()
        uow.commit()
    if mfa and fresh:
        enrol_totp(container, user)
    return user


def enrol_totp(container: Container, user: str) -> None:
    """Enrol an authenticator app (TOTP) for `user` through the MFA service, confirmed with its
    first code as a person's authenticator would (the key is not kept)."""
    with container.uow() as uow:
        enrolment = container.mfa.begin_totp(uow, user, f"{user}@trading-tests.invalid")
        code = pyotp.TOTP(enrolment.secret).at(container.clock.now())
        container.mfa.confirm_totp(uow, user, code).raise_for_failure()
        uow.commit()
    container.risk_gate.forget(user)


def fund(container: Container, user: str, amount: str) -> None:
    """Deposit cash, opening the trading account first if needed (see `open_account`)."""
    open_account(container, user)
    with container.uow() as uow:
        container.ledger.deposit(uow, user, amount)
        uow.commit()


#: Who records the tests' locates: a compliance desk acting in-process.
_LOCATE_DESK = Principal(
    actor="system:test-desk", user_id=None, permissions=frozenset({"risk:limits"}), method="system"
)


def set_limits(container: Container, user: str, **limits: str) -> None:
    """Override risk limits of `user`, as an administrator does (audited)."""
    admin = Principal(
        actor="user:test-admin",
        user_id="test-admin",
        permissions=frozenset({"risk:limits"}),
        method="session",
    )
    with container.uow() as uow:
        container.risk.set_limits(uow, admin, user, dict(limits), "test limits")
        uow.commit()
    container.risk_gate.forget(user)


def locate(container: Container, user: str, symbol: str = "ACME", quantity: str = "100000") -> None:
    """Record a borrow for `user`'s short sales of `symbol` today (Regulation SHO)."""
    with container.uow() as uow:
        container.risk.record_locate(
            uow, _LOCATE_DESK, user, symbol, Decimal(quantity), "test stock-loan desk"
        )
        uow.commit()
    container.risk_gate.forget(user)


def place(
    container: Container,
    user: str,
    side: str,
    quantity: str,
    price: str | None = None,
    *,
    symbol: str = "ACME",
    type: str | None = None,
    tif: str = "day",
    stop: str | None = None,
    client_order_id: str | None = None,
) -> dict[str, Any]:
    order_type = OrderType(type) if type else (OrderType.LIMIT if price else OrderType.MARKET)
    request = OrderTicket(
        symbol=symbol,
        side=OrderSide(side),
        type=order_type,
        quantity=Decimal(quantity),
        time_in_force=TimeInForce(tif),
        limit_price=Decimal(price) if price else None,
        stop_price=Decimal(stop) if stop else None,
        client_order_id=client_order_id,
    )
    result: PlaceResult = container.orders.engine.call(Place(user, f"user:{user}", request))
    return result.order


def cash(container: Container, user: str) -> tuple[Decimal, Decimal]:
    with container.db.read() as session:
        account = container.ledger.account(session, user)
    return account.balance, account.reserved


def position(container: Container, user: str, symbol: str = "ACME") -> Decimal:
    with container.db.read() as session:
        for p in container.ledger.positions(session, user):
            if p.symbol == symbol:
                return p.quantity
    return Decimal(0)


def assert_invariants(container: Container) -> None:
    """The books are right: ledger balances, positions = fills, reservations = open orders."""
    with container.db.read() as session:
        problems = container.ledger.verify(session)
        assert problems == [], problems
        fills: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for f in session.scalars(select(FillRow)):
            fills[(f.user_id, f.symbol)] += f.quantity if f.side == "buy" else -f.quantity
        held = {(p.user_id, p.symbol): p.quantity for p in session.scalars(select(PositionRow))}
        for key in set(fills) | set(held):
            assert fills.get(key, Decimal(0)) == held.get(key, Decimal(0)), key
        reserved: dict[str, Decimal] = defaultdict(Decimal)
        filled: dict[str, Decimal] = defaultdict(Decimal)
        open_ids = set()
        for o in session.scalars(select(OrderRow)):
            if o.status in OPEN_STATUSES:
                reserved[o.user_id] += o.reserved
                open_ids.add(o.id)
                assert o.filled_quantity < o.quantity
            else:
                assert o.reserved == 0, f"final order {o.id} still holds {o.reserved}"
            assert o.reserved >= 0
            filled[o.id] = o.filled_quantity
        fill_sum: dict[str, Decimal] = defaultdict(Decimal)
        for f in session.scalars(select(FillRow)):
            fill_sum[f.order_id] += f.quantity
        for order_id, quantity in filled.items():
            assert fill_sum.get(order_id, Decimal(0)) == quantity, order_id
        collateral: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        for p in session.scalars(select(PositionRow)):
            reserved[p.user_id] += p.margin_held
            collateral[(p.user_id, p.symbol)] = (p.quantity, p.margin_held)
        for a in session.scalars(select(AccountRow).where(AccountRow.kind == "cash")):
            assert a.reserved == reserved.get(a.user_id or "", Decimal(0)), a.id
        epoch = session.scalar(select(EngineStateRow.epoch))
    engine = container.orders.engine
    # The engine's memory matches the database whenever it was the last writer.
    if engine.running and engine._epoch is not None and engine._epoch == epoch:
        assert set(engine.core.book.by_id) == open_ids
        # Every short holds Regulation T collateral marked to the last trade; nothing else does.
        for (_, symbol), (quantity, held) in collateral.items():
            last = engine.venue.book(symbol).last_price
            if quantity >= 0 or last is not None:
                assert held == short_collateral(
                    quantity, last or Decimal(0), engine.short_initial_margin
                ), (symbol, quantity, held)

"""Short sales hold Regulation T margin, not their full value (issue #26, item 5).

A short-sale order reserves the initial margin (50 %) of its value; once filled the short position
holds its proceeds plus that 50 % (150 % of its market value), marked to the last trade price, so
a price rise takes buying power away and a fall gives it back. Buying to cover is paid from that
collateral, even when a rise has left the account in margin deficit."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from rampart.bootstrap import Container
from rampart.kernel.ids import new_id
from rampart.ledger.domain import short_collateral
from rampart.trading.db import OrderRow
from rampart.trading.domain import OPEN_STATUSES
from rampart.trading.engine import Cancel
from tests.trading.support import assert_invariants, cash, fund, locate, place, position, set_limits


@pytest.fixture
def market(engine: Container) -> Container:
    for user in ("alice", "bob", "carol"):
        fund(engine, user, "100000")
        locate(engine, user)
    fund(engine, "shorty", "1000")
    locate(engine, "shorty")
    return engine


def trade_at(c: Container, price: str) -> None:
    """Move ACME's last price: carol offers one share short, bob takes it."""
    offer = place(c, "carol", "sell_short", "1", price)
    assert offer["status"] == "accepted", offer["reason"]
    assert place(c, "bob", "buy", "1", price)["status"] == "filled"


def account(c: Container, user: str) -> dict[str, Any]:
    return c.orders.account(user)


def test_cash_x_shorts_up_to_x_over_the_initial_margin_not_just_x(market: Container) -> None:
    # 1,900 of short sale against 1,000 of cash: the order holds 50 %, 950 (main held all 1,900
    # and refused it). The gate adds its fee estimate of 0.95 to the 950: still within 1,000.
    order = place(market, "shorty", "sell_short", "19", "100.00")
    assert order["status"] == "accepted", order["reason"]
    assert cash(market, "shorty") == (D("1000.00"), D("950.00"))
    # Beyond what 50 % of it fits: 2 more shares need 100 of the 50 left.
    more = place(market, "shorty", "sell_short", "2", "100.00")
    assert more["status"] == "rejected"
    assert more["reason"] == "insufficient-buying-power"
    assert_invariants(market)


def test_a_filled_short_holds_its_proceeds_plus_half_marked_to_the_last_trade(
    market: Container,
) -> None:
    place(market, "shorty", "sell_short", "19", "100.00")
    assert place(market, "alice", "buy", "19", "100.00")["status"] == "filled"
    # Proceeds of 1,900 credited; 150 % of 1,900 held: buying power is what was left, 50.
    figures = account(market, "shorty")
    assert (figures["cash"], figures["reserved"], figures["buying_power"]) == ("2900", "2850", "50")
    assert figures["short_collateral"] == "2850"
    assert position(market, "shorty") == -19

    # A rise to 108 raises the requirement to 19 x 108 x 1.5 = 3,078: a margin deficit.
    trade_at(market, "108.00")
    figures = account(market, "shorty")
    assert (figures["reserved"], figures["buying_power"]) == ("3078", "-178")
    refused = place(market, "shorty", "buy", "10", "10.00", symbol="FRAC")
    assert refused["status"] == "rejected"
    assert refused["reason"] == "insufficient-buying-power"
    assert_invariants(market)

    # A fall to 98 lowers it to 2,793: 107 of buying power, and the same order now fits.
    trade_at(market, "98.00")
    figures = account(market, "shorty")
    assert (figures["reserved"], figures["buying_power"]) == ("2793", "107")
    accepted = place(market, "shorty", "buy", "10", "10.00", symbol="FRAC")
    assert accepted["status"] == "accepted", accepted["reason"]
    assert cash(market, "shorty") == (D("2900"), D("2893"))
    assert_invariants(market)


def test_a_short_in_margin_deficit_can_still_be_covered_from_its_collateral(
    market: Container,
) -> None:
    place(market, "shorty", "sell_short", "19", "100.00")
    place(market, "alice", "buy", "19", "100.00")
    trade_at(market, "108.00")
    assert D(account(market, "shorty")["buying_power"]) < 0
    # Covering 19 at 108 costs 2,052, less than the 3,078 the short holds: nothing more to hold.
    assert place(market, "alice", "sell", "19", "108.00")["status"] == "accepted"
    cover = place(market, "shorty", "buy", "19", "108.00")
    assert cover["status"] == "filled", cover["reason"]
    # The loss of 8 a share is paid; nothing is held any more.
    assert cash(market, "shorty") == (D("1000") - 19 * 8, D(0))
    assert position(market, "shorty") == 0
    assert_invariants(market)


def test_a_cancelled_short_sale_frees_its_margin_and_a_partial_fill_keeps_the_rest(
    market: Container,
) -> None:
    order = place(market, "shorty", "sell_short", "10", "100.00")
    assert cash(market, "shorty") == (D("1000"), D("500"))
    place(market, "alice", "buy", "4", "100.00")
    # 4 filled: their 200 of margin is now part of the position's 600; 6 x 50 still on the order.
    assert cash(market, "shorty") == (D("1400"), D("900"))
    market.orders.engine.call(Cancel("shorty", "user:shorty", order["id"]))
    assert cash(market, "shorty") == (D("1400"), D("600"))
    assert_invariants(market)


def test_other_shorts_in_the_symbol_are_marked_by_a_trade_they_are_not_in(
    market: Container,
) -> None:
    place(market, "shorty", "sell_short", "10", "100.00")
    place(market, "alice", "buy", "10", "100.00")
    assert cash(market, "shorty")[1] == D("1500")
    # bob and carol trade at 101.50: shorty's collateral follows, 10 x 101.5 x 1.5.
    trade_at(market, "101.50")
    assert cash(market, "shorty")[1] == D("1522.5")
    assert_invariants(market)


# --- property: a sequence of short sales, covers and price moves ---------------------------------
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["short", "cover", "move"]),
        st.integers(min_value=1, max_value=6),
        # Within the 10 % price collar of one another.
        st.integers(min_value=96, max_value=104),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_collateral_always_equals_the_rule_and_reservations_never_go_negative(  # type: ignore[no-untyped-def]
    engine: Container, steps
) -> None:
    prefix = new_id()[:8]
    trader, street, mover = f"{prefix}t", f"{prefix}s", f"{prefix}m"
    for user, amount in ((trader, "5000"), (street, "1000000"), (mover, "1000000")):
        fund(engine, user, amount)
        locate(engine, user)
        set_limits(engine, user, max_orders_per_second="100000")
    core = engine.orders.engine
    for action, quantity, price in steps:
        engine.clock.advance(3)  # the duplicate-order window is not what this test is about
        qty, px = str(quantity), f"{price}.00"
        if action == "short":
            place(engine, trader, "sell_short", qty, px)
            assert place(engine, street, "buy", qty, px)["status"] == "filled"
        elif action == "cover":
            short = -position(engine, trader)
            if short <= 0:
                continue
            qty = str(min(quantity, short))
            place(engine, street, "sell_short", qty, px)
            assert place(engine, trader, "buy", qty, px)["status"] == "filled"
        else:
            place(engine, mover, "sell_short", "1", px)
            place(engine, street, "buy", "1", px)
        _, reserved = cash(engine, trader)
        assert reserved >= 0
        last = core.venue.book("ACME").last_price
        assert last is not None
        with engine.db.read() as session:
            on_orders = sum(
                session.scalars(
                    select(OrderRow.reserved).where(
                        OrderRow.user_id == trader, OrderRow.status.in_(list(OPEN_STATUSES))
                    )
                ),
                D(0),
            )
        # What the trader holds is exactly the open orders' margin plus the rule's requirement
        # of the position at the last trade: nothing drifts, whatever the sequence.
        rule = short_collateral(position(engine, trader), last, D("0.50"))
        assert reserved == on_orders + rule
        assert_invariants(engine)

"""Amounts an order may carry, and that nothing after their check can raise on them (#14)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from rampart.kernel.money import MAX_ORDER_AMOUNT, within_order_bounds
from rampart.trading.domain import (
    AmountOutOfRangeError,
    Fill,
    Order,
    OrderSide,
    OrderStatus,
    OrderTicket,
    OrderType,
    check_amounts,
    check_shape,
    fmt,
)
from rampart.venue.domain import Instrument, InstrumentStatus, TimeInForce

#: Every amount an order may carry: above 0, at most 10,000,000, at most 8 decimal places.
ACCEPTED = st.decimals(min_value=D("0.00000001"), max_value=MAX_ORDER_AMOUNT, places=8)
ANY_DECIMAL = st.decimals(allow_nan=True, allow_infinity=True)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
STEPS = st.sampled_from([D("0.00000001"), D("0.0001"), D("0.01"), D("1"), D("5"), D("100")])
#: (tick, lot) pairs an instrument may have: together at most 8 decimal places.
TICK_LOT = st.sampled_from(
    [(D("0.01"), D("1")), (D("0.01"), D("0.001")), (D("0.00000001"), D("1")),
     (D("1"), D("0.00000001")), (D("0.0001"), D("0.0001")), (D("5"), D("100"))]
)  # fmt: skip


@given(quantity=ACCEPTED, price=ACCEPTED, stop=ACCEPTED, filled=ACCEPTED, steps=TICK_LOT)
def test_every_step_after_the_check_is_total_on_accepted_amounts(
    quantity: D, price: D, stop: D, filled: D, steps: tuple[D, D]
) -> None:
    tick, lot = steps
    request = OrderTicket(
        "ACME", OrderSide.BUY, OrderType.STOP_LIMIT, quantity, limit_price=price, stop_price=stop
    )
    order = Order(
        "o", "u", "ACME", request.side, request.type, TimeInForce.DAY, request.quantity,
        request.limit_price, request.stop_price, None, NOW, NOW,
    )  # fmt: skip
    instrument = Instrument("ACME", "Acme", tick, lot, InstrumentStatus.ACTIVE, D(1))
    check_shape(order, instrument)  # tick, lot and range: a reason or None, never an exception
    order.transition(OrderStatus.ACCEPTED, NOW)
    order.filled_quantity = min(filled, quantity)
    order.filled_notional = order.filled_quantity * price
    view = order.view()
    for name in ("quantity", "limit_price", "stop_price", "filled_quantity", "average_price"):
        text = view[name]
        assert text is not None
        assert "E" not in text
        # The canonical text reads back as the same amount.
        assert D(text) == getattr(order, name)
    fill = Fill("f", "t", "o", "u", "ACME", OrderSide.BUY, price, quantity, "taker", NOW)
    assert D(fill.view()["price"]) == price
    # Price x quantity (a reservation, a trade's cash) is exact, and so is its text.
    assert D(fmt(price * quantity) or "") == price * quantity


@given(value=ANY_DECIMAL)
def test_formatting_any_decimal_never_raises(value: D) -> None:
    text = fmt(value)
    assert isinstance(text, str)
    if value.is_finite() and abs(value.adjusted()) <= 60:
        assert D(text) == value


@given(value=ANY_DECIMAL)
def test_the_amount_check_refuses_with_its_own_error_and_nothing_else(value: D) -> None:
    """Whatever the Decimal (NaN, infinity, 1E+999999, 1E-40), the check answers it: a value
    within the bounds passes, anything else is an `amount-out-of-range` refusal."""
    fits = within_order_bounds(value)
    try:
        check_amounts(value, value, value)
    except AmountOutOfRangeError:
        assert not fits
    else:
        assert fits
        assert D(0) < value <= MAX_ORDER_AMOUNT
        assert value == value.quantize(D("0.00000001"))


@given(value=ANY_DECIMAL, step=STEPS)
def test_tick_and_lot_checks_never_raise(value: D, step: D) -> None:
    instrument = Instrument("ACME", "Acme", step, D(1), InstrumentStatus.ACTIVE, D(1))
    assert isinstance(instrument.on_tick(value), bool)
    assert isinstance(instrument.on_lot(value), bool)


def test_canonical_text_is_positional_and_without_trailing_zeros() -> None:
    assert fmt(D("100.00000000")) == "100"
    assert fmt(D("0.00000001")) == "0.00000001"  # was "1E-8"
    assert fmt(D("1E+3")) == "1000"
    assert fmt(D("-0.50")) == "-0.5"
    assert fmt(D("0E-8")) == "0"
    assert fmt(D("1" + "0" * 39)) == "1" + "0" * 39  # raised InvalidOperation before
    assert fmt(None) is None

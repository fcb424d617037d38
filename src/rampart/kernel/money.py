"""Money and quantities are Decimal, never float.

A float cannot hold 0.1 exactly; a ledger built on floats drifts. Every amount crosses the
boundaries of the system (JSON, database) as a decimal string or NUMERIC.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

#: Cash is kept to the cent, prices and quantities to 8 places: enough for fractional shares.
CASH_PLACES = Decimal("0.01")
PRICE_PLACES = Decimal("0.00000001")

MONEY_CONTEXT = Context(prec=38, rounding=ROUND_HALF_EVEN)

#: The one zero every domain compares amounts against (defined once, here).
ZERO = Decimal(0)

#: The bounds of an order's quantity and price: at most 8 decimal places (the scale of every
#: amount column, NUMERIC(38, 8), which would silently round a 9th away) and at most 10,000,000.
#: Within them every figure the engine derives (price x quantity, averages, sums of a batch) has
#: at most 15 integer digits and 16 decimal places: exact in 38 digits, and formatting, comparing
#: or quantizing it can never raise. Outside them a value is refused before it reaches the engine.
AMOUNT_PLACES = 8
MAX_ORDER_AMOUNT = Decimal("10000000")


class MoneyError(ValueError):
    pass


def to_decimal(value: object) -> Decimal:
    """Parse an amount from str, int or Decimal; floats are refused, having lost precision."""
    if isinstance(value, (bool, float)):
        raise MoneyError("amounts must be given as strings or integers, not floats")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(value)
        except InvalidOperation as exc:
            raise MoneyError(f"not a decimal amount: {str(value)[:40]!r}") from exc
    else:
        raise MoneyError(f"not a decimal amount: {type(value).__name__}")
    if not result.is_finite():
        raise MoneyError("amounts must be finite")
    return result


def within_order_bounds(value: object, maximum: Decimal = MAX_ORDER_AMOUNT) -> bool:
    """Whether `value` is a Decimal an order may carry: finite, above 0, at most `maximum`, with
    at most `AMOUNT_PLACES` decimal places (trailing zeros aside). Never raises."""
    if not isinstance(value, Decimal) or not value.is_finite():
        return False
    if not 0 < value <= maximum:
        return False
    # Bounded now (at most 8 integer digits), so the quantize below cannot exceed its context.
    return value.quantize(PRICE_PLACES, context=MONEY_CONTEXT) == value


def round_cash(value: Decimal) -> Decimal:
    return value.quantize(CASH_PLACES, context=MONEY_CONTEXT)


def round_price(value: Decimal) -> Decimal:
    return value.quantize(PRICE_PLACES, context=MONEY_CONTEXT)

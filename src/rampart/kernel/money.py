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


def round_cash(value: Decimal) -> Decimal:
    return value.quantize(CASH_PLACES, context=MONEY_CONTEXT)


def round_price(value: Decimal) -> Decimal:
    return value.quantize(PRICE_PLACES, context=MONEY_CONTEXT)

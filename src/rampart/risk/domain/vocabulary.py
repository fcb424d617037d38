"""The words of the risk domain: account statuses, margin modes, reject codes, and the constants
the checks share."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from rampart.kernel.money import ZERO
from rampart.venue.domain import InstrumentStatus, OrderType
from rampart.venue.domain import OrderSide as Side

__all__ = [
    "FLAG_THRESHOLD_SECURITY",
    "HUNDRED",
    "LIMIT_CODES",
    "NS_PER_SECOND",
    "ONE",
    "ORDER_PLACE",
    "ZERO",
    "AccountStatus",
    "InstrumentStatus",
    "MarginMode",
    "OrderType",
    "RejectCode",
    "Side",
]

ONE = Decimal(1)
HUNDRED = Decimal(100)
NS_PER_SECOND = 1_000_000_000

ORDER_PLACE = "order:place"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class MarginMode(StrEnum):
    #: Amended FINRA Rule 4210: intraday margin standards (the default).
    INTRADAY = "intraday"
    #: The pattern-day-trader count and its $25,000 minimum, kept for the phase-in.
    LEGACY_PDT = "legacy-pdt"


class RejectCode(StrEnum):
    """Stable reasons for refusing an order. Clients branch on them: never change one."""

    NOT_AUTHORISED = "not-authorised"
    ACCOUNT_NOT_ACTIVE = "account-not-active"
    EMAIL_NOT_VERIFIED = "email-not-verified"
    MFA_NOT_ENROLLED = "mfa-not-enrolled"
    #: The account was recovered less than 24 hours ago (factor reset, or a password reset by
    #: email when that mailbox was its only second factor); the same name as the problem type
    #: withdrawals and API keys answer with meanwhile.
    MFA_COOLING_PERIOD = "mfa-cooling-period"
    MARKET_HALTED = "market-halted"
    SYMBOL_HALTED = "symbol-halted"
    ACCOUNT_HALTED = "account-halted"
    REDUCE_ONLY = "reduce-only"
    RESTRICTED_SECURITY = "restricted-security"
    INVALID_ORDER = "invalid-order"
    INSUFFICIENT_BUYING_POWER = "insufficient-buying-power"
    MAX_ORDER_QUANTITY = "max-order-quantity"
    MAX_ORDER_NOTIONAL = "max-order-notional"
    MAX_POSITION = "max-position"
    MAX_GROSS_EXPOSURE = "max-gross-exposure"
    NO_REFERENCE_PRICE = "no-reference-price"
    PRICE_COLLAR = "price-collar"
    PRICE_BAND = "price-band"
    DUPLICATE_ORDER = "duplicate-order"
    ORDER_RATE = "order-rate-exceeded"
    SELF_TRADE = "self-trade"
    INTRADAY_MARGIN = "intraday-margin-deficit"
    PATTERN_DAY_TRADER = "pattern-day-trader"
    LOCATE_REQUIRED = "locate-required"
    NAKED_SHORT = "naked-short"
    DAILY_LOSS_LIMIT = "daily-loss-limit"
    DAILY_ORDER_LIMIT = "daily-order-limit"
    DAILY_TRADE_LIMIT = "daily-trade-limit"
    ERRONEOUS_ORDERS = "erroneous-order-pattern"
    WINDOW_NOTIONAL = "window-notional-exceeded"
    REPEATED_EXECUTION = "repeated-execution"
    CHECK_ERROR = "risk-check-error"


#: Codes that are *limits*: an exposure-reducing order is never refused with one of these.
LIMIT_CODES: frozenset[RejectCode] = frozenset(
    {
        RejectCode.INSUFFICIENT_BUYING_POWER,
        RejectCode.MAX_ORDER_QUANTITY,
        RejectCode.MAX_ORDER_NOTIONAL,
        RejectCode.MAX_POSITION,
        RejectCode.MAX_GROSS_EXPOSURE,
        RejectCode.INTRADAY_MARGIN,
        RejectCode.PATTERN_DAY_TRADER,
        RejectCode.DAILY_LOSS_LIMIT,
        RejectCode.DAILY_ORDER_LIMIT,
        RejectCode.DAILY_TRADE_LIMIT,
        RejectCode.WINDOW_NOTIONAL,
        RejectCode.REDUCE_ONLY,
    }
)


#: Flag on an accepted short sale of a Regulation SHO threshold security.
FLAG_THRESHOLD_SECURITY = "threshold-security"

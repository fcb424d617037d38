"""Checks 1 and 2: who may trade, and whether trading is allowed here now (halts, trading states,
the restricted list), plus the order's own sanity."""

from __future__ import annotations

from rampart.risk.domain.decision import Decision, reject
from rampart.risk.domain.evaluation import Evaluation
from rampart.risk.domain.limits import RiskConfig, RiskLimits
from rampart.risk.domain.snapshots import AccountSnapshot, InstrumentSnapshot, OrderRequest
from rampart.risk.domain.states import TradingControls, TradingState
from rampart.risk.domain.vocabulary import (
    ORDER_PLACE,
    AccountStatus,
    InstrumentStatus,
    OrderType,
    RejectCode,
)

# Enum members read through their class cost a descriptor call each; the hot path reads these.
_NEEDS_LIMIT_PRICE = frozenset({OrderType.LIMIT, OrderType.STOP_LIMIT})
_NEEDS_STOP_PRICE = frozenset({OrderType.STOP, OrderType.STOP_LIMIT})
_STATE_ACTIVE = TradingState.ACTIVE
_STATE_REDUCING = TradingState.REDUCING
_STATE_HALTED = TradingState.HALTED
_ACCOUNT_ACTIVE = AccountStatus.ACTIVE
_INSTRUMENT_HALTED = InstrumentStatus.HALTED
_INSTRUMENT_RESTRICTED = InstrumentStatus.RESTRICTED


class AccessChecks:
    """Authorisation, trading controls and order sanity. These apply to every order, reducing
    ones included."""

    __slots__ = ("config",)

    def __init__(self, config: RiskConfig) -> None:
        self.config = config

    def authorisation(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if ORDER_PLACE not in o.permissions:
            return reject(RejectCode.NOT_AUTHORISED, "the credential may not place orders")
        if a.status is not _ACCOUNT_ACTIVE:
            return reject(RejectCode.ACCOUNT_NOT_ACTIVE, f"the account is {a.status.value}")
        if not a.email_verified:
            return reject(RejectCode.EMAIL_NOT_VERIFIED, "verify your email address to trade")
        if self.config.require_mfa and not a.mfa_enrolled:
            return reject(RejectCode.MFA_NOT_ENROLLED, "enrol a second factor to trade")
        if a.recovery_hold:
            return reject(
                RejectCode.MFA_COOLING_PERIOD,
                "the account was recovered less than 24 hours ago; trading resumes when the "
                "cooling period ends",
            )
        return None

    def trading_controls(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if c.market_halted or c.platform_state is _STATE_HALTED:
            return reject(RejectCode.MARKET_HALTED, "trading is halted market-wide")
        if i.status is _INSTRUMENT_HALTED or o.symbol in c.halted_symbols:
            return reject(RejectCode.SYMBOL_HALTED, f"trading in {o.symbol} is halted")
        state = c.account_states.get(o.account_id, _STATE_ACTIVE)
        if o.account_id in c.halted_accounts or state is _STATE_HALTED:
            return reject(RejectCode.ACCOUNT_HALTED, "trading on this account is halted")
        if (
            i.status is _INSTRUMENT_RESTRICTED or o.symbol in c.restricted_symbols
        ) and not ev.reducing:
            # Opening or adding to a position is refused; closing or reducing one is allowed,
            # so that a customer is never trapped in a restricted security (trading's built-in
            # rule for restricted instruments agrees).
            return reject(
                RejectCode.RESTRICTED_SECURITY,
                f"{o.symbol} is on the restricted list: only orders reducing a position pass",
            )
        if (state is _STATE_REDUCING or c.platform_state is _STATE_REDUCING) and not ev.reducing:
            return reject(
                RejectCode.REDUCE_ONLY, "only orders that reduce exposure are accepted now"
            )
        return None

    def order_sanity(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        if o.quantity <= 0 or not o.quantity.is_finite():
            return reject(RejectCode.INVALID_ORDER, "the quantity must be positive")
        if o.order_type in _NEEDS_LIMIT_PRICE and o.limit_price is None:
            return reject(RejectCode.INVALID_ORDER, "a limit order needs a limit price")
        if o.order_type in _NEEDS_STOP_PRICE and o.stop_price is None:
            return reject(RejectCode.INVALID_ORDER, "a stop order needs a stop price")
        if (o.limit_price is not None and o.limit_price <= 0) or (
            o.stop_price is not None and o.stop_price <= 0
        ):
            return reject(RejectCode.INVALID_ORDER, "prices must be positive")
        if ev.price is None:
            return reject(
                RejectCode.NO_REFERENCE_PRICE,
                f"{o.symbol} has no reference price; market orders cannot be collared",
            )
        return None

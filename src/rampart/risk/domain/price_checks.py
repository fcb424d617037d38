"""Check 4: the price collar around the reference price, and the price band around the moving
reference (limit-up/limit-down style)."""

from __future__ import annotations

from rampart.risk.domain.decision import Decision, reject
from rampart.risk.domain.evaluation import Evaluation
from rampart.risk.domain.limits import RiskConfig, RiskLimits
from rampart.risk.domain.snapshots import AccountSnapshot, InstrumentSnapshot, OrderRequest
from rampart.risk.domain.states import TradingControls
from rampart.risk.domain.vocabulary import HUNDRED, RejectCode

_CODE_PRICE_COLLAR = RejectCode.PRICE_COLLAR


class PriceChecks:
    """Protections against erroneous prices: they apply to reducing orders too."""

    __slots__ = ("_default_collar",)

    def __init__(self, config: RiskConfig) -> None:
        self._default_collar = config.default_collar_percent / HUNDRED

    def price_collar(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        reference = i.reference_price
        if reference is None:
            return reject(RejectCode.NO_REFERENCE_PRICE, f"{o.symbol} has no reference price")
        fraction = self._default_collar if i.collar_percent is None else i.collar_percent / HUNDRED
        band = reference * fraction
        for price in (o.limit_price, o.stop_price):
            if price is not None and abs(price - reference) > band:
                return reject(
                    _CODE_PRICE_COLLAR,
                    f"{price} is more than {fraction * HUNDRED}% from the reference price "
                    f"{reference}",
                )
        return None

    def price_band(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        low, high = i.band_low, i.band_high
        if low is None or high is None:
            return None
        # Market orders are protected by the collar (their working price is its edge); the band
        # is about the prices an order asks for.
        for price in (o.limit_price, o.stop_price):
            if price is not None and (price < low or price > high):
                return reject(
                    RejectCode.PRICE_BAND,
                    f"{price} is outside {o.symbol}'s price band of {low:.2f} to {high:.2f} "
                    f"(around its {i.band_window_seconds} s average price of "
                    f"{i.band_reference:.2f})",
                )
        return None

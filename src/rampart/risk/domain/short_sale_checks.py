"""Check 7: Regulation SHO. A long sale must be of shares held; a short sale needs a locate."""

from __future__ import annotations

from rampart.risk.domain.decision import Decision, reject
from rampart.risk.domain.evaluation import Evaluation
from rampart.risk.domain.limits import RiskLimits
from rampart.risk.domain.snapshots import AccountSnapshot, InstrumentSnapshot, OrderRequest
from rampart.risk.domain.states import TradingControls
from rampart.risk.domain.vocabulary import ZERO, RejectCode, Side

_SELL = Side.SELL
_SHORT = Side.SELL_SHORT


class ShortSaleChecks:
    """Locates and naked shorts (threshold securities are flagged on acceptance, not refused)."""

    __slots__ = ()

    def reg_sho(
        self,
        o: OrderRequest,
        a: AccountSnapshot,
        i: InstrumentSnapshot,
        lim: RiskLimits,
        c: TradingControls,
        ev: Evaluation,
    ) -> Decision | None:
        h = ev.holding
        replaced = o.replaces.quantity if o.replaces is not None else ZERO
        if o.side is _SELL:
            owned = h.quantity - h.open_sell_quantity + replaced
            if o.quantity > owned:
                return reject(
                    RejectCode.NAKED_SHORT,
                    "a long sale must be of shares you hold; mark it short, with a locate",
                )
            return None
        if o.side is _SHORT:
            located = a.locates.get(o.symbol, ZERO)
            if located <= 0:
                return reject(
                    RejectCode.LOCATE_REQUIRED, f"a short sale of {o.symbol} needs a locate"
                )
            if o.quantity - replaced > located:
                return reject(
                    RejectCode.LOCATE_REQUIRED,
                    f"only {located} of {o.symbol} is located for short sales",
                )
        return None

"""Risk's pure logic: the pre-trade pipeline and the values it reads and answers with.

No database, web or network imports here (an import contract checks it). The modules:

- `vocabulary`: account statuses, margin modes, reject codes, shared constants;
- `states`: trading states, halt scopes, and `TradingControls`, the value the engine reads;
- `limits`: an account's limits, validation of their overrides, the checks' parameters;
- `snapshots`: the order and the account and instrument snapshots the checks read;
- `holdings`: building a snapshot's aggregates from positions and open orders;
- `decision`: accept, or reject with a stable code;
- `activity`, `business_days`: activity windows over time, and the business-day calendar;
- `evaluation`: per-order facts computed once and shared by the checks;
- `access_checks`, `limit_checks`, `price_checks`, `conduct_checks`, `short_sale_checks`: the
  checks by family;
- `pipeline`: `RiskPipeline`, which runs them in order (its module doc says why it is shaped so).

Other packages import from `rampart.risk.domain`, the names below.
"""

from rampart.risk.domain.activity import ActivityTracker
from rampart.risk.domain.business_days import count_day_trades, last_business_days
from rampart.risk.domain.decision import Decision
from rampart.risk.domain.evaluation import reduces_exposure
from rampart.risk.domain.holdings import OpenOrderFact, PositionFact, summarise_holdings
from rampart.risk.domain.limits import (
    InvalidLimitError,
    RiskConfig,
    RiskLimits,
    parse_limit_overrides,
)
from rampart.risk.domain.pipeline import RiskPipeline
from rampart.risk.domain.snapshots import (
    AccountSnapshot,
    Holding,
    InstrumentSnapshot,
    OrderRequest,
    ReplacedOrder,
)
from rampart.risk.domain.states import HaltScope, TradingControls, TradingState
from rampart.risk.domain.vocabulary import (
    FLAG_THRESHOLD_SECURITY,
    LIMIT_CODES,
    NS_PER_SECOND,
    ORDER_PLACE,
    ZERO,
    AccountStatus,
    InstrumentStatus,
    MarginMode,
    OrderType,
    RejectCode,
    Side,
)

__all__ = [
    "FLAG_THRESHOLD_SECURITY",
    "LIMIT_CODES",
    "NS_PER_SECOND",
    "ORDER_PLACE",
    "ZERO",
    "AccountSnapshot",
    "AccountStatus",
    "ActivityTracker",
    "Decision",
    "HaltScope",
    "Holding",
    "InstrumentSnapshot",
    "InstrumentStatus",
    "InvalidLimitError",
    "MarginMode",
    "OpenOrderFact",
    "OrderRequest",
    "OrderType",
    "PositionFact",
    "RejectCode",
    "ReplacedOrder",
    "RiskConfig",
    "RiskLimits",
    "RiskPipeline",
    "Side",
    "TradingControls",
    "TradingState",
    "count_day_trades",
    "last_business_days",
    "parse_limit_overrides",
    "reduces_exposure",
    "summarise_holdings",
]

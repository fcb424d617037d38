"""An account's limits, how overrides of them are validated, and the platform-wide parameters of
the checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from rampart.risk.domain.vocabulary import NS_PER_SECOND, MarginMode


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """An account's limits (platform defaults merged with its own overrides)."""

    max_order_quantity: Decimal
    max_order_notional: Decimal
    max_position_quantity: Decimal
    max_gross_exposure: Decimal
    daily_loss_limit: Decimal
    max_orders_per_day: int
    max_trades_per_day: int
    max_orders_per_second: int
    #: Size over time: notional of accepted orders within the erroneous-order window.
    max_window_notional: Decimal
    #: Collar rejections within the window after which every order is refused for a while.
    max_collar_strikes: int
    #: Executions in one symbol within the execution window that lock the account.
    max_executions_in_window: int

    #: Names of the limits, in a stable order (storage, API and CLI validate against it).
    NAMES = (
        "max_order_quantity",
        "max_order_notional",
        "max_position_quantity",
        "max_gross_exposure",
        "daily_loss_limit",
        "max_orders_per_day",
        "max_trades_per_day",
        "max_orders_per_second",
        "max_window_notional",
        "max_collar_strikes",
        "max_executions_in_window",
    )
    INTEGER_NAMES = frozenset(
        {
            "max_orders_per_day",
            "max_trades_per_day",
            "max_orders_per_second",
            "max_collar_strikes",
            "max_executions_in_window",
        }
    )

    def with_overrides(self, overrides: Mapping[str, str | int | Decimal]) -> RiskLimits:
        return replace(self, **parse_limit_overrides(overrides))  # type: ignore[arg-type]

    def as_strings(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in self.NAMES}


class InvalidLimitError(ValueError):
    pass


def parse_limit_overrides(overrides: Mapping[str, object]) -> dict[str, Decimal | int]:
    """Validate limit overrides: known names, non-negative, integers where counted."""
    parsed: dict[str, Decimal | int] = {}
    for name, raw in overrides.items():
        if name not in RiskLimits.NAMES:
            raise InvalidLimitError(f"unknown limit `{str(name)[:64]}`")
        if isinstance(raw, bool | float):
            raise InvalidLimitError(f"`{name}` must be given as a decimal string or an integer")
        try:
            value = Decimal(str(raw))
        except ArithmeticError as exc:
            raise InvalidLimitError(f"`{name}` is not a number") from exc
        if not value.is_finite() or value < 0:
            raise InvalidLimitError(f"`{name}` must be a finite number, zero or more")
        if value > Decimal("1e18"):
            raise InvalidLimitError(f"`{name}` is out of range")
        if name in RiskLimits.INTEGER_NAMES:
            if value != value.to_integral_value():
                raise InvalidLimitError(f"`{name}` must be a whole number")
            parsed[name] = int(value)
        else:
            parsed[name] = value
    return parsed


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Platform-wide parameters of the checks (from `settings.risk`)."""

    default_collar_percent: Decimal = Decimal(10)
    margin_mode: MarginMode = MarginMode.INTRADAY
    require_mfa: bool = True
    fee_rate: Decimal = Decimal("0.0005")
    fee_minimum: Decimal = Decimal("0")
    #: Intraday maintenance margin on long and short positions (FINRA 4210: 25% and 30%).
    long_margin_rate: Decimal = Decimal("0.25")
    short_margin_rate: Decimal = Decimal("0.30")
    #: Regulation T initial margin on a short sale, held from buying power.
    short_initial_margin: Decimal = Decimal("0.50")
    pdt_min_equity: Decimal = Decimal(25_000)
    pdt_day_trades: int = 4
    pdt_business_days: int = 5
    duplicate_window_ns: int = 2 * NS_PER_SECOND
    erroneous_window_ns: int = 60 * NS_PER_SECOND
    execution_window_ns: int = 10 * NS_PER_SECOND
    holidays: frozenset[date] = frozenset()

"""Business days, for the legacy pattern-day-trader count."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta


def is_business_day(day: date, holidays: frozenset[date] = frozenset()) -> bool:
    return day.weekday() < 5 and day not in holidays


def last_business_days(
    today: date, count: int, holidays: frozenset[date] = frozenset()
) -> frozenset[date]:
    """The `count` business days ending with `today` (or before it, when today is not one)."""
    days: list[date] = []
    day = today
    while len(days) < count:
        if is_business_day(day, holidays):
            days.append(day)
        day -= timedelta(days=1)
    return frozenset(days)


def count_day_trades(
    day_trade_dates: Iterable[date],
    today: date,
    business_days: int = 5,
    holidays: frozenset[date] = frozenset(),
) -> int:
    """Day trades within the last `business_days` business days, today included."""
    window = last_business_days(today, business_days, holidays)
    return sum(1 for day in day_trade_dates if day in window)

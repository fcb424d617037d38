"""Price bands over time (limit-up/limit-down style): the reference price a band is centred on.

The per-order collar compares an order with the last trade price, so a price can be walked far
in steps that each stay inside it (two accounts took one from 100 to 168 in six fills within
seconds). Exchanges stop that with bands around a reference that moves slowly: under the US
limit-up/limit-down plan, the average price over the preceding five minutes. Here the reference
is the time-weighted average of the last trade price over a trailing window, so a burst of
trades within seconds barely moves it, while a price that holds a new level for the window
carries the band along with it.

Pure and incremental: each symbol keeps its price changes within the window and the running
price-time area between them, so a reference costs a few operations, not a scan of the window.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

#: A symbol keeps at most this many price changes (a flood cannot exhaust memory; the oldest go,
#: which shortens the window's memory of a noisy symbol, never the band's width).
MAX_PRINTS = 10_000


class _Series:
    __slots__ = ("area", "prints")

    def __init__(self, start_ns: int, price: Decimal) -> None:
        #: (time, price) of each price change, oldest first; a price holds until the next one.
        self.prints: deque[tuple[int, Decimal]] = deque([(start_ns, price)])
        #: Sum of price x duration over the segments between consecutive prints.
        self.area = Decimal(0)

    def observe(self, now_ns: int, price: Decimal) -> None:
        last_ns, last_price = self.prints[-1]
        if price == last_price:
            return
        now_ns = max(now_ns, last_ns)
        self.area += last_price * (now_ns - last_ns)
        self.prints.append((now_ns, price))
        if len(self.prints) > MAX_PRINTS:
            self._drop_first()

    def _drop_first(self) -> None:
        (t0, p0), (t1, _) = self.prints[0], self.prints[1]
        self.area -= p0 * (t1 - t0)
        self.prints.popleft()

    def average(self, now_ns: int, window_ns: int) -> Decimal:
        start = now_ns - window_ns
        prints = self.prints
        while len(prints) > 1 and prints[1][0] <= start:
            self._drop_first()
        first_ns, first_price = prints[0]
        last_ns, last_price = prints[-1]
        if now_ns <= last_ns and len(prints) == 1:
            return last_price
        area = self.area + last_price * max(0, now_ns - last_ns)
        begin = first_ns
        if first_ns < start:
            area -= first_price * (start - first_ns)
            begin = start
        duration = now_ns - begin
        if duration <= 0:
            return last_price
        return area / duration


class ReferencePrices:
    """The moving reference price of each symbol seen.

    A symbol first seen is taken to have traded at its current price for the whole window
    before: the band starts anchored where the price is, not where the next trades take it."""

    def __init__(self) -> None:
        self._series: dict[str, _Series] = {}

    def observe(self, symbol: str, price: Decimal, now_ns: int, window_ns: int) -> None:
        series = self._series.get(symbol)
        if series is None:
            self._series[symbol] = _Series(now_ns - window_ns, price)
        else:
            series.observe(now_ns, price)

    def reference(self, symbol: str, now_ns: int, window_ns: int) -> Decimal | None:
        series = self._series.get(symbol)
        return None if series is None else series.average(now_ns, window_ns)

    def forget(self, symbol: str) -> None:
        self._series.pop(symbol, None)

"""Activity over time: the in-memory windows the throttle, duplicate and over-time checks read."""

from __future__ import annotations

import threading
from collections import deque
from decimal import Decimal

from rampart.risk.domain.snapshots import OrderRequest
from rampart.risk.domain.vocabulary import NS_PER_SECOND, ZERO


class AccountActivity:
    """Recent activity of one account: what the throttle, duplicate and over-time checks read.

    Held in memory by the process that runs the pipeline (the single-writer order engine); a
    restart forgets it, which only ever loosens a window of seconds.
    """

    __slots__ = (
        "collar_strikes",
        "executions",
        "last_seen",
        "order_times",
        "recent_keys",
        "window_notional",
        "window_orders",
    )

    def __init__(self) -> None:
        self.order_times: deque[int] = deque()
        #: (time, (symbol, side, quantity, price)) of accepted new orders.
        self.recent_keys: deque[tuple[int, tuple[object, ...]]] = deque()
        #: The latest acceptance time of each key in `recent_keys`: a lookup, not a scan.
        self.last_seen: dict[tuple[object, ...], int] = {}
        self.window_orders: deque[tuple[int, Decimal]] = deque()
        self.window_notional = ZERO
        self.collar_strikes: deque[int] = deque()
        self.executions: dict[str, deque[int]] = {}

    def orders_in_last_second(self, now_ns: int) -> int:
        times = self.order_times
        horizon = now_ns - NS_PER_SECOND
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)

    def expire_keys(self, horizon: int) -> None:
        recent, last_seen = self.recent_keys, self.last_seen
        while recent and recent[0][0] <= horizon:
            seen_at, old = recent.popleft()
            if last_seen.get(old) == seen_at:
                del last_seen[old]

    def notional_in_window(self, now_ns: int, window_ns: int) -> Decimal:
        orders = self.window_orders
        horizon = now_ns - window_ns
        while orders and orders[0][0] <= horizon:
            self.window_notional -= orders.popleft()[1]
        return self.window_notional

    def collar_strikes_in_window(self, now_ns: int, window_ns: int) -> int:
        strikes = self.collar_strikes
        horizon = now_ns - window_ns
        while strikes and strikes[0] <= horizon:
            strikes.popleft()
        return len(strikes)

    def executions_in_window(self, symbol: str, now_ns: int, window_ns: int) -> int:
        times = self.executions.get(symbol)
        if not times:
            return 0
        horizon = now_ns - window_ns
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)


class ActivityTracker:
    """Activity windows of every account, bounded per account.

    Thread-safe for the access pattern it has: the order engine evaluates and records under
    `lock`, and executions are recorded under the same lock.
    """

    #: No account keeps more than this many entries in any window (a flood cannot exhaust memory).
    MAX_ENTRIES = 10_000
    #: Duplicate keys are kept this long (longer than any duplicate window) before pruning.
    KEY_RETENTION_NS = 60 * NS_PER_SECOND

    def __init__(self) -> None:
        self._accounts: dict[str, AccountActivity] = {}
        self.lock = threading.Lock()

    def of(self, account_id: str) -> AccountActivity:
        activity = self._accounts.get(account_id)
        if activity is None:
            activity = self._accounts[account_id] = AccountActivity()
        return activity

    def record_message(self, account_id: str, now_ns: int) -> None:
        """Every order message counts against the throttle, accepted or not."""
        times = self.of(account_id).order_times
        times.append(now_ns)
        if len(times) > self.MAX_ENTRIES:
            times.popleft()

    def record_accepted(self, order: OrderRequest, notional: Decimal, now_ns: int) -> None:
        activity = self.of(order.account_id)
        if order.replaces is None:
            key = duplicate_key(order)
            keys = activity.recent_keys
            if keys and keys[0][0] <= now_ns - self.KEY_RETENTION_NS:
                activity.expire_keys(now_ns - self.KEY_RETENTION_NS)
            keys.append((now_ns, key))
            activity.last_seen[key] = now_ns
            if len(keys) > self.MAX_ENTRIES:
                activity.expire_keys(keys[0][0])
        activity.window_orders.append((now_ns, notional))
        activity.window_notional += notional
        if len(activity.window_orders) > self.MAX_ENTRIES:
            activity.window_notional -= activity.window_orders.popleft()[1]

    def record_collar_strike(self, account_id: str, now_ns: int) -> None:
        strikes = self.of(account_id).collar_strikes
        strikes.append(now_ns)
        if len(strikes) > self.MAX_ENTRIES:
            strikes.popleft()

    def record_execution(self, account_id: str, symbol: str, now_ns: int) -> None:
        executions = self.of(account_id).executions
        times = executions.get(symbol)
        if times is None:
            times = executions[symbol] = deque()
        times.append(now_ns)
        if len(times) > self.MAX_ENTRIES:
            times.popleft()

    def forget_executions(self, account_id: str) -> None:
        """Clear the execution window, once a person has lifted a repeated-execution lock."""
        activity = self._accounts.get(account_id)
        if activity is not None:
            activity.executions.clear()


def duplicate_key(order: OrderRequest) -> tuple[object, ...]:
    return (order.symbol, order.side, order.quantity, order.limit_price, order.stop_price)

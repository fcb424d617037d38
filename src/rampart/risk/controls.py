"""The in-memory view of trading controls and limits that the pre-trade pipeline reads.

The order engine must see a halt the moment it is declared, without a database read per order.
`ControlBook` holds one immutable `TradingControls` value and the effective limits of each
account; a change builds a new value and swaps the reference (atomic in CPython), so a reader
sees the state before or after a change, never half of it.

Changes that tighten (a halt, REDUCING) take effect in memory at once, before their transaction
commits: if it rolls back, the next reload from the database lifts them again, which errs on the
safe side. Such changes are *pinned* so that a reload racing the commit cannot lift them early,
but only until the database shows them committed, or shows a later change of the same thing (a
person's reset made in another process wins over an automatic REDUCING pinned here), or for
`PIN_SECONDS` at most (a rolled-back tightening). Changes that loosen (a resume) take effect only
after they are committed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from rampart.risk.domain import HaltScope, RiskLimits, TradingControls, TradingState

#: How long a tightening made in memory survives reloads that do not (yet) show it.
PIN_SECONDS = 30.0

HaltKey = tuple[HaltScope, str]
#: A price band: its width in percent of the reference price, and the reference's window in s.
Band = tuple[Decimal, int]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ControlBook:
    def __init__(
        self,
        defaults: RiskLimits,
        *,
        band: Band = (Decimal(0), 300),
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._now = now
        self._default_band = band
        self._bands: dict[str, Band] = {}
        #: The stored version of the controls this book last loaded (`risk_controls_version`).
        self.version: int | None = None
        self._lock = threading.Lock()
        self._defaults = defaults
        self._stored = TradingControls()
        self.controls = TradingControls()
        self._platform_overrides: Mapping[str, str] = {}
        self._account_overrides: dict[str, Mapping[str, str]] = {}
        self._platform_limits = defaults
        self._limits: dict[str, RiskLimits] = {}
        #: Halts and states made in memory ahead of their commit: key -> monotonic deadline (and
        #: for a state, when it was pinned: a stored change at or after it releases the pin).
        self._pinned_halts: dict[HaltKey, float] = {}
        self._pinned_states: dict[str, tuple[TradingState, float, datetime]] = {}
        #: Why each account (or `*`, the platform) is in its state, as stored or pinned.
        self.state_reasons: dict[str, str] = {}

    # --- reads (the hot path) ------------------------------------------------------------------
    def limits_for(self, account_id: str) -> RiskLimits:
        limits = self._limits.get(account_id)
        if limits is not None:
            return limits
        overrides = self._account_overrides.get(account_id)
        limits = (
            self._platform_limits.with_overrides(overrides) if overrides else self._platform_limits
        )
        self._limits[account_id] = limits
        return limits

    @property
    def platform_limits(self) -> RiskLimits:
        return self._platform_limits

    def band_for(self, symbol: str) -> Band | None:
        """The price band of `symbol` (its own, else the platform's); None: no band."""
        band = self._bands.get(symbol, self._default_band)
        return band if band[0] > 0 else None

    @property
    def bands(self) -> dict[str, Band]:
        return dict(self._bands)

    # --- whole reloads ---------------------------------------------------------------------------
    def load(
        self,
        controls: TradingControls,
        platform_overrides: Mapping[str, str],
        account_overrides: Mapping[str, Mapping[str, str]],
        *,
        state_changes: Mapping[str, tuple[datetime, str]] | None = None,
        bands: Mapping[str, tuple[Decimal | None, int | None]] | None = None,
        version: int | None = None,
    ) -> None:
        """Replace everything with what the database holds, keeping the pins it does not yet
        answer. `state_changes`: per account id (`*` for the platform), when its stored state
        last changed and why."""
        platform_limits = self._defaults.with_overrides(platform_overrides)
        changes = state_changes or {}
        with self._lock:
            for key, (state, _, pinned_at) in list(self._pinned_states.items()):
                stored = changes.get(key)
                if _state_of(controls, key) is state or (
                    stored is not None and _aware(stored[0]) > pinned_at
                ):
                    # Committed, or overtaken by a later change (a person's, perhaps from
                    # another process): the database speaks for it now.
                    del self._pinned_states[key]
            for scope, target in list(self._pinned_halts):
                if _has_halt(controls, scope, target):
                    del self._pinned_halts[(scope, target)]
            self.state_reasons = {key: reason for key, (_, reason) in changes.items()}
            if bands is not None:
                default_percent, default_window = self._default_band
                self._bands = {
                    symbol: (
                        default_percent if percent is None else percent,
                        default_window if window is None else window,
                    )
                    for symbol, (percent, window) in bands.items()
                }
            if version is not None:
                self.version = version
            self._stored = controls
            self._platform_overrides = dict(platform_overrides)
            self._account_overrides = dict(account_overrides)
            self._platform_limits = platform_limits
            self._limits = {}
            self._publish()

    def set_limit_overrides(self, account_id: str | None, overrides: Mapping[str, str]) -> None:
        with self._lock:
            if account_id is None:
                self._platform_overrides = dict(overrides)
                self._platform_limits = self._defaults.with_overrides(overrides)
            elif overrides:
                self._account_overrides[account_id] = dict(overrides)
            else:
                self._account_overrides.pop(account_id, None)
            self._limits = {}

    # --- halts and states --------------------------------------------------------------------
    def add_halt(self, scope: HaltScope, target: str, *, pin: bool = True) -> None:
        with self._lock:
            if pin:
                self._pinned_halts[(scope, target)] = time.monotonic() + PIN_SECONDS
            self._stored = _with_halt(self._stored, scope, target, True)
            self._publish()

    def remove_halt(self, scope: HaltScope, target: str) -> None:
        with self._lock:
            self._pinned_halts.pop((scope, target), None)
            self._stored = _with_halt(self._stored, scope, target, False)
            self._publish()

    def set_state(
        self, account_id: str | None, state: TradingState, *, pin: bool, reason: str | None = None
    ) -> None:
        key = account_id or "*"
        with self._lock:
            if pin:
                self._pinned_states[key] = (state, time.monotonic() + PIN_SECONDS, self._now())
            else:
                self._pinned_states.pop(key, None)
            if reason is not None:
                self.state_reasons[key] = reason
            self._stored = _with_state(self._stored, account_id, state)
            self._publish()

    def set_restricted(self, symbol: str, restricted: bool) -> None:
        with self._lock:
            symbols = set(self._stored.restricted_symbols)
            (symbols.add if restricted else symbols.discard)(symbol)
            self._stored = replace(self._stored, restricted_symbols=frozenset(symbols))
            self._publish()

    def _publish(self) -> None:
        now = time.monotonic()
        controls = self._stored
        for key, deadline in list(self._pinned_halts.items()):
            if deadline < now:
                del self._pinned_halts[key]
            else:
                controls = _with_halt(controls, key[0], key[1], True)
        for account, (state, deadline, _) in list(self._pinned_states.items()):
            if deadline < now:
                del self._pinned_states[account]
            else:
                controls = _with_state(controls, None if account == "*" else account, state)
        self.controls = controls


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _state_of(controls: TradingControls, key: str) -> TradingState:
    if key == "*":
        return controls.platform_state
    return controls.account_states.get(key, TradingState.ACTIVE)


def _has_halt(controls: TradingControls, scope: HaltScope, target: str) -> bool:
    if scope is HaltScope.MARKET:
        return controls.market_halted
    if scope is HaltScope.SYMBOL:
        return target in controls.halted_symbols
    return target in controls.halted_accounts


def _with_halt(
    controls: TradingControls, scope: HaltScope, target: str, halted: bool
) -> TradingControls:
    if scope is HaltScope.MARKET:
        return replace(controls, market_halted=halted)
    symbol = scope is HaltScope.SYMBOL
    members = set(controls.halted_symbols if symbol else controls.halted_accounts)
    (members.add if halted else members.discard)(target)
    if symbol:
        return replace(controls, halted_symbols=frozenset(members))
    return replace(controls, halted_accounts=frozenset(members))


def _with_state(
    controls: TradingControls, account_id: str | None, state: TradingState
) -> TradingControls:
    if account_id is None:
        return replace(controls, platform_state=state)
    states = dict(controls.account_states)
    if state is TradingState.ACTIVE:
        states.pop(account_id, None)
    else:
        states[account_id] = state
    return replace(controls, account_states=states)

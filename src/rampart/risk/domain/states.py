"""Trading states and halts: what the order engine must know at once, as one immutable value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class TradingState(StrEnum):
    """As in nautilus_trader: ACTIVE trades; REDUCING lets only exposure-reducing orders
    through; HALTED refuses every order."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


class HaltScope(StrEnum):
    MARKET = "market"
    SYMBOL = "symbol"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class TradingControls:
    """Platform and account trading states, halts and the restricted list: one immutable value,
    swapped whole when anything changes, so a reader never sees half an update."""

    platform_state: TradingState = TradingState.ACTIVE
    account_states: Mapping[str, TradingState] = field(default_factory=dict)
    market_halted: bool = False
    halted_symbols: frozenset[str] = frozenset()
    halted_accounts: frozenset[str] = frozenset()
    restricted_symbols: frozenset[str] = frozenset()

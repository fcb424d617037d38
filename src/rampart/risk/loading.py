"""Reading the stored trading controls into the in-memory `ControlBook`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rampart.risk.controls import ControlBook
from rampart.risk.db import (
    HaltRow,
    PriceBandRow,
    RestrictedSecurityRow,
    RiskLimitRow,
    TradingStateRow,
)
from rampart.risk.domain import HaltScope, TradingControls, TradingState
from rampart.risk.inputs import PLATFORM_SCOPE
from rampart.risk.revisions import read_version


def load_controls(session: Session, book: ControlBook) -> TradingControls:
    """Read halts, states, the restricted list and limits into the in-memory book (at start
    and periodically, so that every process sees changes made by another)."""
    market = False
    symbols: set[str] = set()
    accounts: set[str] = set()
    for halt in session.scalars(select(HaltRow).where(HaltRow.status == "active")):
        if halt.scope == HaltScope.MARKET:
            market = True
        elif halt.scope == HaltScope.SYMBOL:
            symbols.add(halt.target)
        else:
            accounts.add(halt.target)
    version = read_version(session)
    platform_state = TradingState.ACTIVE
    states: dict[str, TradingState] = {}
    changes: dict[str, tuple[datetime, str]] = {}
    for state in session.scalars(select(TradingStateRow)):
        key = "*" if state.scope == PLATFORM_SCOPE else state.scope.removeprefix("account:")
        changes[key] = (state.changed_at, state.reason)
        if state.scope == PLATFORM_SCOPE:
            platform_state = TradingState(state.state)
        elif state.state != TradingState.ACTIVE:
            states[key] = TradingState(state.state)
    restricted = frozenset(session.scalars(select(RestrictedSecurityRow.symbol)))
    platform_overrides: dict[str, str] = {}
    account_overrides: dict[str, dict[str, str]] = {}
    for limits in session.scalars(select(RiskLimitRow)):
        if limits.scope == PLATFORM_SCOPE:
            platform_overrides = dict(limits.limits)
        else:
            account_overrides[limits.scope.removeprefix("account:")] = dict(limits.limits)
    controls = TradingControls(
        platform_state=platform_state,
        account_states=states,
        market_halted=market,
        halted_symbols=frozenset(symbols),
        halted_accounts=frozenset(accounts),
        restricted_symbols=restricted,
    )
    bands = {
        row.symbol: (row.band_percent, row.window_seconds)
        for row in session.scalars(select(PriceBandRow))
    }
    book.load(
        controls,
        platform_overrides,
        account_overrides,
        state_changes=changes,
        bands=bands,
        version=version,
    )
    return book.controls

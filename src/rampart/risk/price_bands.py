"""Per-instrument price bands (limit-up/limit-down style): who may set them, and how a change is
recorded. The check itself is `PriceChecks.price_band` (`rampart.risk.domain.price_checks`); the
moving reference `bands.py`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rampart.access.domain import Permission, Principal, ensure_permission
from rampart.kernel.clock import utc
from rampart.kernel.errors import ValidationError
from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork
from rampart.risk.db import PriceBandRow
from rampart.risk.inputs import clean_symbol, reason_text, require_person
from rampart.risk.revisions import bump_version
from rampart.risk.service import RiskService

MAX_WINDOW_SECONDS = 86_400


def set_price_band(
    risk: RiskService,
    uow: UnitOfWork,
    principal: Principal,
    symbol: str,
    percent: Decimal | None,
    window_seconds: int | None,
    reason: str,
) -> dict[str, Any]:
    """Give `symbol` its own band (None for a field: the platform default; both None: remove the
    instrument's own band). Risk administrators only, a person; audited with before and after."""
    ensure_permission(principal, Permission.RISK_LIMITS)
    require_person(principal)
    symbol, reason = clean_symbol(symbol), reason_text(reason)
    if percent is not None and (not percent.is_finite() or not 0 <= percent <= 100):
        raise ValidationError("A band is 0 to 100 percent of the reference price (0: no band).")
    if window_seconds is not None and not 1 <= window_seconds <= MAX_WINDOW_SECONDS:
        raise ValidationError(f"The window is 1 to {MAX_WINDOW_SECONDS} seconds.")
    row = uow.session.get(PriceBandRow, symbol, with_for_update=True)
    before = _as_dict(row)
    now = risk.clock.now()
    if percent is None and window_seconds is None:
        if row is not None:
            uow.session.delete(row)
        row = None
    elif row is None:
        row = PriceBandRow(
            symbol=symbol,
            band_percent=percent,
            window_seconds=window_seconds,
            reason=reason,
            updated_at=now,
            updated_by=principal.actor,
        )
        uow.session.add(row)
    else:
        row.band_percent, row.window_seconds = percent, window_seconds
        row.reason, row.updated_at, row.updated_by = reason, now, principal.actor
    uow.session.flush()
    after = _as_dict(row)
    bump_version(uow.session, risk.clock.now())
    risk.event_log.record(
        uow,
        "band-change",
        actor=principal.actor,
        detail=reason,
        symbol=symbol,
        data={"before": before, "after": after},
    )
    uow.audit(
        AuditEvent(
            action="risk.band.changed",
            subject=f"symbol:{symbol}",
            details={"before": before, "after": after, "reason": reason},
        )
    )
    # Every process, this one included, reloads its bands before its next batch of orders: the
    # version moved in this transaction.
    return {"symbol": symbol, **(after or {"band_percent": None, "window_seconds": None})}


def price_bands(risk: RiskService, session: Session) -> dict[str, Any]:
    """The platform default and each instrument's own band."""
    percent, window = risk.default_band
    rows = session.scalars(select(PriceBandRow).order_by(PriceBandRow.symbol))
    return {
        "default": {"band_percent": str(percent), "window_seconds": window},
        "instruments": [
            {
                "symbol": r.symbol,
                **(_as_dict(r) or {}),
                "reason": r.reason,
                "updated_by": r.updated_by,
                "updated_at": utc(r.updated_at).isoformat(),
            }
            for r in rows
        ],
    }


def _as_dict(row: PriceBandRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "band_percent": None if row.band_percent is None else str(row.band_percent),
        "window_seconds": row.window_seconds,
    }

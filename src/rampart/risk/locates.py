"""Locates (Regulation SHO): borrows arranged for an account's short sales, per trading day."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rampart.access.domain import Permission, Principal, ensure_permission
from rampart.kernel.clock import Clock
from rampart.kernel.errors import ValidationError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.platform.uow import UnitOfWork
from rampart.risk.db import LocateRow
from rampart.risk.events import RiskEventLog
from rampart.risk.inputs import clean_account, clean_symbol


class LocatesService:
    """Records and sums locates. Takes a unit of work for changes; never commits."""

    def __init__(self, clock: Clock, events: RiskEventLog) -> None:
        self._clock = clock
        self._events = events

    def record_locate(
        self,
        uow: UnitOfWork,
        principal: Principal,
        account_id: str,
        symbol: str,
        quantity: Decimal,
        source: str,
    ) -> dict[str, Any]:
        """Record a borrow arranged for an account's short sales today."""
        ensure_permission(principal, Permission.RISK_LIMITS)
        account_id, symbol = clean_account(account_id), clean_symbol(symbol)
        if not quantity.is_finite() or quantity <= 0 or quantity > Decimal("1e12"):
            raise ValidationError("A locate is for a positive quantity.")
        source = source.strip()
        if not source or len(source) > 200:
            raise ValidationError("Name the lender or the stock-loan reference (1-200 characters).")
        today = self._clock.now().date().isoformat()
        row = LocateRow(
            id=new_id(),
            account_id=account_id,
            symbol=symbol,
            quantity=quantity,
            source=source,
            trade_date=today,
            created_at=self._clock.now(),
            created_by=principal.actor,
        )
        uow.session.add(row)
        uow.session.flush()
        details = {
            "locate_id": row.id,
            "symbol": symbol,
            "quantity": str(quantity),
            "source": source,
        }
        self._events.record(
            uow,
            "locate",
            actor=principal.actor,
            detail=f"located {quantity} {symbol}",
            account_id=account_id,
            symbol=symbol,
            data=details,
        )
        uow.audit(
            AuditEvent(
                action="risk.locate.recorded", subject=f"account:{account_id}", details=details
            )
        )
        return {**details, "account_id": account_id, "trade_date": today}

    def located(self, session: Session, account_id: str, day: date) -> dict[str, Decimal]:
        """Quantity located for the account's short sales on `day`, per symbol."""
        located: dict[str, Decimal] = {}
        rows = session.scalars(
            select(LocateRow).where(
                LocateRow.account_id == account_id, LocateRow.trade_date == day.isoformat()
            )
        )
        for row in rows:
            located[row.symbol] = located.get(row.symbol, Decimal(0)) + row.quantity
        return located

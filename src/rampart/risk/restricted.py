"""The restricted list: securities in which only orders that reduce a position pass."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rampart.access.domain import Permission, Principal, ensure_permission
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import NotFoundError
from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork
from rampart.risk.controls import ControlBook
from rampart.risk.db import RestrictedSecurityRow
from rampart.risk.events import RiskEventLog
from rampart.risk.inputs import clean_symbol, reason_text, require_person
from rampart.risk.revisions import bump_version


class RestrictedListService:
    """Adds and removes restricted securities. Takes a unit of work for changes; never commits.
    Adding one tightens at once; removing one loosens only after the commit."""

    def __init__(self, clock: Clock, book: ControlBook, events: RiskEventLog) -> None:
        self._clock = clock
        self._book = book
        self._events = events

    def restrict(self, uow: UnitOfWork, principal: Principal, symbol: str, reason: str) -> None:
        ensure_permission(principal, Permission.COMPLIANCE_HALT)
        require_person(principal)
        symbol, reason = clean_symbol(symbol), reason_text(reason)
        if uow.session.get(RestrictedSecurityRow, symbol) is not None:
            return
        uow.session.add(
            RestrictedSecurityRow(
                symbol=symbol, reason=reason, added_by=principal.actor, added_at=self._clock.now()
            )
        )
        uow.session.flush()
        bump_version(uow.session, self._clock.now())
        self._book.set_restricted(symbol, True)
        self._events.record(uow, "restricted", actor=principal.actor, detail=reason, symbol=symbol)
        uow.audit(
            AuditEvent(
                action="risk.restricted.added",
                subject=f"symbol:{symbol}",
                details={"reason": reason},
            )
        )

    def unrestrict(self, uow: UnitOfWork, principal: Principal, symbol: str, reason: str) -> None:
        ensure_permission(principal, Permission.COMPLIANCE_HALT)
        require_person(principal)
        symbol, reason = clean_symbol(symbol), reason_text(reason)
        row = uow.session.get(RestrictedSecurityRow, symbol)
        if row is None:
            raise NotFoundError(f"{symbol} is not on the restricted list.")
        uow.session.delete(row)
        uow.session.flush()
        bump_version(uow.session, self._clock.now())
        self._events.record(
            uow, "unrestricted", actor=principal.actor, detail=reason, symbol=symbol
        )
        uow.audit(
            AuditEvent(
                action="risk.restricted.removed",
                subject=f"symbol:{symbol}",
                details={"reason": reason},
            )
        )
        uow.after_commit(lambda: self._book.set_restricted(symbol, False))

    def restricted(self, session: Session) -> list[dict[str, Any]]:
        rows = session.scalars(select(RestrictedSecurityRow).order_by(RestrictedSecurityRow.symbol))
        return [
            {"symbol": r.symbol, "reason": r.reason, "added_by": r.added_by,
             "added_at": utc(r.added_at).isoformat()}
            for r in rows
        ]  # fmt: skip

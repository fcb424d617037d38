"""The risk event log: every refusal, halt, resume, state, limit, band and locate change, as a
row compliance staff can page through (with its audit entry written beside it by the caller)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from rampart.access.domain import Permission, Principal, ensure_permission
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import ValidationError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.platform.uow import UnitOfWork
from rampart.risk.db import RiskEventRow
from rampart.risk.domain import TradingState
from rampart.risk.inputs import MAX_PAGE


@dataclass(frozen=True, slots=True)
class RiskEventView:
    id: str
    occurred_at: datetime
    kind: str
    code: str | None
    account_id: str | None
    symbol: str | None
    actor: str
    detail: str
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "occurred_at": self.occurred_at.isoformat(),
            "kind": self.kind,
            "code": self.code,
            "account_id": self.account_id,
            "symbol": self.symbol,
            "actor": self.actor,
            "detail": self.detail,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class RejectionRecord:
    """A refused order, as the gate hands it to the recorder."""

    occurred_at: datetime
    account_id: str
    symbol: str
    code: str
    detail: str
    check: str
    actor: str
    order: dict[str, Any]
    escalate: TradingState | None = None


class Escalate(Protocol):
    """Tighten an account after a refusal that asks for it (`TradingStatesService.escalate`)."""

    def __call__(
        self,
        uow: UnitOfWork,
        account_id: str,
        state: TradingState,
        code: str,
        *,
        since: datetime | None = None,
        detail: str = "",
    ) -> None: ...


def _event_view(row: RiskEventRow) -> RiskEventView:
    return RiskEventView(
        id=row.id,
        occurred_at=utc(row.occurred_at),
        kind=row.kind,
        code=row.code,
        account_id=row.account_id,
        symbol=row.symbol,
        actor=row.actor,
        detail=row.detail,
        data=dict(row.data or {}),
    )


class RiskEventLog:
    """Writes risk events in the caller's unit of work, and reads them back for compliance."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def record(
        self,
        uow: UnitOfWork,
        kind: str,
        *,
        actor: str,
        detail: str,
        code: str | None = None,
        account_id: str | None = None,
        symbol: str | None = None,
        data: dict[str, Any] | None = None,
        when: datetime | None = None,
    ) -> None:
        uow.session.add(
            RiskEventRow(
                id=new_id(),
                occurred_at=when or self._clock.now(),
                kind=kind,
                code=code,
                account_id=account_id,
                symbol=symbol,
                actor=actor,
                detail=detail[:2000],
                data=data or {},
            )
        )

    def record_rejections(
        self, uow: UnitOfWork, records: list[RejectionRecord], escalate: Escalate
    ) -> None:
        """Write refused orders as risk events and audit entries; apply escalations."""
        for record in records:
            self.record(
                uow,
                "rejection",
                actor=record.actor,
                detail=record.detail,
                code=record.code,
                account_id=record.account_id,
                symbol=record.symbol,
                data={"check": record.check, "order": record.order},
                when=record.occurred_at,
            )
            uow.audit(
                AuditEvent(
                    action="risk.order.rejected",
                    outcome="denied",
                    subject=f"account:{record.account_id}",
                    details={
                        "code": record.code,
                        "check": record.check,
                        "symbol": record.symbol,
                        "order": record.order,
                    },
                    actor=record.actor,
                )
            )
            if record.escalate is not None:
                escalate(
                    uow,
                    record.account_id,
                    record.escalate,
                    record.code,
                    since=record.occurred_at,
                    detail=record.detail,
                )

    def events(
        self,
        session: Session,
        principal: Principal,
        *,
        account_id: str | None = None,
        kind: str | None = None,
        code: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RiskEventView]:
        """Risk events, newest first, for compliance staff. `before` is the id of the last event
        of the previous page (ids sort by time)."""
        if not (
            principal.can(Permission.COMPLIANCE_AUDIT)
            or principal.can(Permission.COMPLIANCE_REPORT)
        ):
            ensure_permission(principal, Permission.COMPLIANCE_AUDIT)
        limit = max(1, min(limit, MAX_PAGE))
        query = select(RiskEventRow)
        if account_id is not None:
            query = query.where(RiskEventRow.account_id == account_id)
        if kind is not None:
            query = query.where(RiskEventRow.kind == kind)
        if code is not None:
            query = query.where(RiskEventRow.code == code)
        if since is not None:
            query = query.where(RiskEventRow.occurred_at >= since)
        if until is not None:
            query = query.where(RiskEventRow.occurred_at < until)
        if before is not None:
            anchor = session.get(RiskEventRow, before)
            if anchor is None:
                raise ValidationError("`before` is not the id of a risk event.")
            query = query.where(
                or_(
                    RiskEventRow.occurred_at < anchor.occurred_at,
                    and_(
                        RiskEventRow.occurred_at == anchor.occurred_at,
                        RiskEventRow.id < anchor.id,
                    ),
                )
            )
        query = query.order_by(RiskEventRow.occurred_at.desc(), RiskEventRow.id.desc())
        return [_event_view(row) for row in session.scalars(query.limit(limit))]

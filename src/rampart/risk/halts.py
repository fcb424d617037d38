"""Trading halts, the kill switch: one symbol, one account, or the whole market. A halt refuses new
orders at once, cancels pending ones, tells the affected users and creates a regulator-notification
record; lifting it takes two different people (the four-eyes resume)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rampart.access.domain import Permission, Principal, ensure_permission
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from rampart.kernel.events import AuditEvent, OutboxMessage
from rampart.kernel.ids import new_id
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.risk.controls import ControlBook
from rampart.risk.db import HaltRow, RegulatorNotificationRow
from rampart.risk.domain import ActivityTracker, HaltScope
from rampart.risk.events import RiskEventLog
from rampart.risk.inputs import (
    MAX_PAGE,
    clean_account,
    clean_symbol,
    reason_text,
    require_person,
)
from rampart.risk.ports import OpenOrderCanceller
from rampart.risk.revisions import bump_version

log = get_logger(__name__)

REGULATOR = "FINRA"
TOPIC_HALTED = "risk.trading-halted"
TOPIC_RESUMED = "risk.trading-resumed"
#: Cancellation reason the order engine records on orders a halt cancels.
CANCEL_REASON_HALT = "trading-halted"


class HaltNotFoundError(NotFoundError):
    code = "halt-not-found"
    title = "No such halt"


class AlreadyHaltedError(ConflictError):
    code = "already-halted"
    title = "Trading is already halted there"


class HaltNotActiveError(ConflictError):
    code = "halt-not-active"
    title = "The halt has already been lifted"


class ResumeNotRequestedError(ConflictError):
    code = "resume-not-requested"
    title = "Nobody has asked to resume this halt yet"


class FourEyesError(ForbiddenError):
    """Resuming trading needs two different people: one asks, another approves."""

    code = "four-eyes-required"
    title = "A second, different person must approve"


@dataclass(frozen=True, slots=True)
class HaltView:
    id: str
    scope: str
    target: str
    status: str
    reason: str
    halted_by: str
    halted_at: datetime
    resume_requested_by: str | None
    resume_requested_at: datetime | None
    resumed_by: str | None
    resumed_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope,
            "target": self.target,
            "status": self.status,
            "reason": self.reason,
            "halted_by": self.halted_by,
            "halted_at": self.halted_at.isoformat(),
            "resume_requested_by": self.resume_requested_by,
            "resume_requested_at": _iso(self.resume_requested_at),
            "resumed_by": self.resumed_by,
            "resumed_at": _iso(self.resumed_at),
        }


@dataclass(slots=True)
class HaltTicket:
    """A halt just declared. `cancelled_orders` is filled in once the transaction has committed
    and the engine has cancelled the pending orders (None until then, or without an engine)."""

    halt: HaltView
    cancelled_orders: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.halt.as_dict(), "cancelled_orders": self.cancelled_orders}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _halt_view(row: HaltRow) -> HaltView:
    return HaltView(
        id=row.id,
        scope=row.scope,
        target=row.target,
        status=row.status,
        reason=row.reason,
        halted_by=row.halted_by,
        halted_at=utc(row.halted_at),
        resume_requested_by=row.resume_requested_by,
        resume_requested_at=utc(row.resume_requested_at) if row.resume_requested_at else None,
        resumed_by=row.resumed_by,
        resumed_at=utc(row.resumed_at) if row.resumed_at else None,
    )


class HaltsService:
    """Declares and lifts halts. Takes a unit of work for changes and a session for reads; never
    commits."""

    def __init__(
        self,
        clock: Clock,
        book: ControlBook,
        activity: ActivityTracker,
        events: RiskEventLog,
        canceller: OpenOrderCanceller | None = None,
    ) -> None:
        self._clock = clock
        self._book = book
        self._activity = activity
        self._events = events
        #: The order engine, which cancels pending orders once a halt is durable (set at wiring).
        self.canceller = canceller

    def _active_halt(self, session: Session, scope: HaltScope, target: str) -> HaltRow | None:
        return session.scalars(
            select(HaltRow).where(
                HaltRow.status == "active", HaltRow.scope == scope.value, HaltRow.target == target
            )
        ).first()

    def halt(
        self,
        uow: UnitOfWork,
        principal: Principal,
        scope: HaltScope,
        target: str | None,
        reason: str,
    ) -> HaltTicket:
        """Stop trading in one symbol, one account, or everywhere: new orders are refused from
        this moment, pending orders are cancelled, the affected users are told and a
        regulator-notification record is created."""
        ensure_permission(principal, Permission.COMPLIANCE_HALT)
        require_person(principal)
        reason = reason_text(reason)
        if scope is HaltScope.MARKET:
            target = "*"
        elif target is None:
            raise ValidationError(f"A {scope.value} halt names its {scope.value}.")
        elif scope is HaltScope.SYMBOL:
            target = clean_symbol(target)
        else:
            target = clean_account(target)
        if self._active_halt(uow.session, scope, target) is not None:
            raise AlreadyHaltedError
        return self._halt(uow, principal.actor, scope, target, reason)

    def lock_account(self, uow: UnitOfWork, account_id: str, code: str) -> None:
        """The system's lock of an account after `code` (repeated executions): an account halt
        that only a person can lift. Nothing to do when the account is already halted."""
        if self._active_halt(uow.session, HaltScope.ACCOUNT, account_id) is None:
            self._halt(
                uow,
                "system",
                HaltScope.ACCOUNT,
                account_id,
                f"automatic lock after {code}: a person must re-enable trading",
            )

    def _halt(
        self, uow: UnitOfWork, actor: str, scope: HaltScope, target: str, reason: str
    ) -> HaltTicket:
        # In memory first: the engine refuses new orders from this moment, before anything else
        # runs; pending orders are cancelled as soon as the halt is durable (after commit, still
        # inside the request that declared it).
        self._book.add_halt(scope, target)
        bump_version(uow.session, self._clock.now())
        now = self._clock.now()
        row = HaltRow(
            id=new_id(),
            scope=scope.value,
            target=target,
            status="active",
            reason=reason,
            halted_by=actor,
            halted_at=now,
        )
        uow.session.add(row)
        uow.session.flush()
        facts = {
            "halt_id": row.id,
            "scope": scope.value,
            "target": target,
            "reason": reason,
            "halted_by": actor,
            "halted_at": now.isoformat(),
        }
        self._regulator_record(uow, row.id, "halt", facts)
        self._events.record(
            uow,
            "halt",
            actor=actor,
            detail=reason,
            account_id=target if scope is HaltScope.ACCOUNT else None,
            symbol=target if scope is HaltScope.SYMBOL else None,
            data=facts,
        )
        uow.audit(
            AuditEvent(
                action="risk.halt.started", subject=f"halt:{row.id}", details=facts, actor=actor
            )
        )
        # Who is affected (the account's owner, holders of the symbol, everyone) is resolved by
        # the consumer of this topic, which knows users and their contact details.
        uow.emit(OutboxMessage(topic=TOPIC_HALTED, payload=facts))
        ticket = HaltTicket(_halt_view(row))
        uow.after_commit(lambda: self._cancel_after_halt(ticket, scope, target))
        return ticket

    def _cancel_after_halt(self, ticket: HaltTicket, scope: HaltScope, target: str) -> None:
        if self.canceller is None:
            log.warning("halt without an order canceller: pending orders were not cancelled")
            return
        try:
            ticket.cancelled_orders = self.canceller.cancel_open_orders(
                account_id=target if scope is HaltScope.ACCOUNT else None,
                symbol=target if scope is HaltScope.SYMBOL else None,
                reason=CANCEL_REASON_HALT,
            )
        except Exception:
            log.error(
                "cancelling orders after a halt failed", halt_id=ticket.halt.id, exc_info=True
            )

    def _regulator_record(
        self, uow: UnitOfWork, halt_id: str, event: str, facts: dict[str, Any]
    ) -> None:
        uow.session.add(
            RegulatorNotificationRow(
                id=new_id(),
                halt_id=halt_id,
                event=event,
                regulator=REGULATOR,
                status="pending",
                payload=facts,
                created_at=self._clock.now(),
            )
        )

    def _halt_row(self, session: Session, halt_id: str, *, lock: bool = False) -> HaltRow:
        row = session.get(HaltRow, halt_id, with_for_update=lock) if len(halt_id) <= 36 else None
        if row is None:
            raise HaltNotFoundError
        return row

    def request_resume(
        self, uow: UnitOfWork, principal: Principal, halt_id: str, reason: str
    ) -> HaltView:
        """First of the four eyes: ask for trading to resume. Nothing resumes yet."""
        ensure_permission(principal, Permission.COMPLIANCE_HALT)
        require_person(principal)
        reason = reason_text(reason)
        row = self._halt_row(uow.session, halt_id, lock=True)
        if row.status != "active":
            raise HaltNotActiveError
        row.resume_requested_by = principal.actor
        row.resume_requested_at = self._clock.now()
        row.resume_reason = reason
        uow.session.flush()
        uow.audit(
            AuditEvent(
                action="risk.halt.resume-requested",
                subject=f"halt:{row.id}",
                details={"reason": reason},
            )
        )
        self._events.record(
            uow,
            "resume-requested",
            actor=principal.actor,
            detail=reason,
            account_id=row.target if row.scope == HaltScope.ACCOUNT else None,
            symbol=row.target if row.scope == HaltScope.SYMBOL else None,
            data={"halt_id": row.id},
        )
        return _halt_view(row)

    def approve_resume(self, uow: UnitOfWork, principal: Principal, halt_id: str) -> HaltView:
        """Second of the four eyes: a different person approves, and trading resumes once this
        transaction commits."""
        ensure_permission(principal, Permission.COMPLIANCE_HALT)
        require_person(principal)
        row = self._halt_row(uow.session, halt_id, lock=True)
        if row.status != "active":
            raise HaltNotActiveError
        if row.resume_requested_by is None:
            raise ResumeNotRequestedError
        if row.resume_requested_by == principal.actor:
            raise FourEyesError("The person who asked to resume cannot also approve it.")
        now = self._clock.now()
        row.status = "resumed"
        row.resumed_by = principal.actor
        row.resumed_at = now
        uow.session.flush()
        scope = HaltScope(row.scope)
        facts = {
            "halt_id": row.id,
            "scope": row.scope,
            "target": row.target,
            "requested_by": row.resume_requested_by,
            "approved_by": principal.actor,
            "resumed_at": now.isoformat(),
            "reason": row.resume_reason,
        }
        self._regulator_record(uow, row.id, "resume", facts)
        self._events.record(
            uow,
            "resume",
            actor=principal.actor,
            detail=row.resume_reason or "",
            account_id=row.target if scope is HaltScope.ACCOUNT else None,
            symbol=row.target if scope is HaltScope.SYMBOL else None,
            data=facts,
        )
        uow.audit(AuditEvent(action="risk.halt.resumed", subject=f"halt:{row.id}", details=facts))
        bump_version(uow.session, self._clock.now())
        uow.emit(OutboxMessage(topic=TOPIC_RESUMED, payload=facts))
        target = row.target

        def lift() -> None:
            self._book.remove_halt(scope, target)
            if scope is HaltScope.ACCOUNT:
                self._activity.forget_executions(target)

        uow.after_commit(lift)
        return _halt_view(row)

    def record_four_eyes_refusal(self, uow: UnitOfWork, principal: Principal, halt_id: str) -> None:
        """Audit a refused single-person resume (in its own transaction: the attempt rolled
        back)."""
        uow.audit(
            AuditEvent(
                action="risk.halt.resume-refused",
                outcome="denied",
                subject=f"halt:{halt_id[:36]}",
                details={"why": "the person who asked to resume tried to approve it"},
            )
        )
        self._events.record(
            uow,
            "resume-refused",
            actor=principal.actor,
            detail="four eyes: the requester cannot approve",
            data={"halt_id": halt_id[:36]},
        )

    def halts(
        self, session: Session, *, active_only: bool = True, limit: int = 100
    ) -> list[HaltView]:
        query = select(HaltRow)
        if active_only:
            query = query.where(HaltRow.status == "active")
        query = query.order_by(HaltRow.halted_at.desc()).limit(max(1, min(limit, MAX_PAGE)))
        return [_halt_view(row) for row in session.scalars(query)]

    def regulator_notifications(self, session: Session, halt_id: str) -> list[dict[str, Any]]:
        rows = session.scalars(
            select(RegulatorNotificationRow)
            .where(RegulatorNotificationRow.halt_id == halt_id)
            .order_by(RegulatorNotificationRow.created_at)
        )
        return [
            {
                "id": r.id,
                "event": r.event,
                "regulator": r.regulator,
                "status": r.status,
                "payload": r.payload,
                "created_at": utc(r.created_at).isoformat(),
            }
            for r in rows
        ]

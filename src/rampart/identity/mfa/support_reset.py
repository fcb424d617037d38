"""Support-assisted factor reset: two staff members (four eyes) remove every second factor of a
user who lost them all; a 24-hour cooling period follows (`rampart.identity.mfa.recovery`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, update

from rampart.access.domain import Principal
from rampart.identity.mfa.db import (
    BackupCodeRow,
    ChallengeRow,
    FactorResetRow,
    OtpChannelRow,
    TotpRow,
    WebAuthnCredentialRow,
)
from rampart.identity.mfa.domain import cooling_until
from rampart.identity.mfa.factors import factor_summary
from rampart.identity.mfa.ports import Notifier
from rampart.identity.mfa.recovery import ResetRequest, open_reset_request, take_reset_request
from rampart.kernel.clock import Clock
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.platform.uow import UnitOfWork

Listener = Callable[[UnitOfWork, str], object]


@dataclass(frozen=True, slots=True)
class ResetRecord:
    id: str
    user_id: str
    created_at: datetime
    cooling_until: datetime


class SupportReset:
    def __init__(self, clock: Clock, notifier: Notifier, *, hold_listeners: list[Listener]) -> None:
        self._clock = clock
        self._notifier = notifier
        self._hold_listeners = hold_listeners
        #: Called with (uow, user_id) in the transaction of a support-assisted factor reset
        #: (identity ends a staff member's sessions there: they carry a key proof now void).
        self.reset_listeners: list[Listener] = []

    def request(
        self,
        uow: UnitOfWork,
        operator: Principal,
        user_id: str,
        *,
        verification_method: str,
        verification_reference: str,
        reason: str,
    ) -> ResetRequest:
        """First of four eyes: support asks to remove every factor of a user who lost them,
        recording how their identity was re-verified. Nothing changes until a different staff
        member approves (`approve`)."""
        return open_reset_request(
            uow,
            operator,
            user_id,
            self._clock.now(),
            verification_method=verification_method,
            verification_reference=verification_reference,
            reason=reason,
        )

    def approve(self, uow: UnitOfWork, operator: Principal, request_id: str) -> ResetRecord:
        """Second of four eyes: remove every second factor of the request's user. Starts a
        24-hour cooling period for orders, withdrawals and new API keys."""
        request = take_reset_request(uow, operator, request_id, self._clock.now())
        return self._remove_every_factor(
            uow,
            request.user_id,
            performed_by=operator.actor,
            requested_by=request.requested_by,
            request_id=request.id,
            method=request.verification_method,
            reference=request.verification_reference,
            reason=request.reason,
        )

    def _remove_every_factor(
        self,
        uow: UnitOfWork,
        user_id: str,
        *,
        performed_by: str,
        requested_by: str,
        request_id: str,
        method: str,
        reference: str,
        reason: str,
    ) -> ResetRecord:
        session = uow.session
        before = factor_summary(session, user_id)
        for table in (TotpRow, WebAuthnCredentialRow, OtpChannelRow, BackupCodeRow):
            session.execute(delete(table).where(table.user_id == user_id))
        session.execute(
            update(ChallengeRow)
            .where(ChallengeRow.user_id == user_id, ChallengeRow.consumed_at.is_(None))
            .values(consumed_at=self._clock.now())
            .execution_options(synchronize_session=False)
        )
        now = self._clock.now()
        row = FactorResetRow(
            id=new_id(),
            user_id=user_id,
            performed_by=performed_by,
            verification_method=method,
            verification_reference=reference,
            reason=reason,
            created_at=now,
            cooling_until=cooling_until(now),
        )
        session.add(row)
        session.flush()
        uow.audit(
            AuditEvent(
                action="mfa.reset",
                subject=f"user:{user_id}",
                details={
                    "reset_id": row.id,
                    "request_id": request_id,
                    "requested_by": requested_by,
                    "approved_by": performed_by,
                    "verification_method": method,
                    "verification_reference": reference,
                    "reason": reason,
                    "removed": before.kinds(),
                    "cooling_until": row.cooling_until.isoformat(),
                },
            )
        )
        self._notifier.security_notice(
            uow, user_id, "mfa.reset", {"cooling_until": row.cooling_until.isoformat()}
        )
        for listener in [*self.reset_listeners, *self._hold_listeners]:
            listener(uow, user_id)
        return ResetRecord(
            id=row.id, user_id=user_id, created_at=now, cooling_until=row.cooling_until
        )

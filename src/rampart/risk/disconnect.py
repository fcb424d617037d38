"""Cancel-on-disconnect: a credential (session or API key) asks that its account's open orders be
cancelled when its stream connection drops."""

from __future__ import annotations

from rampart.access.domain import Principal
from rampart.kernel.clock import Clock
from rampart.kernel.errors import ValidationError
from rampart.kernel.events import AuditEvent
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.risk.db import CancelOnDisconnectRow
from rampart.risk.events import RiskEventLog
from rampart.risk.ports import OpenOrderCanceller

log = get_logger(__name__)

#: Cancellation reason the order engine records on orders a dropped connection cancels.
CANCEL_REASON_DISCONNECT = "cancel-on-disconnect"


class CancelOnDisconnectService:
    """Registers credentials and acts when their connection drops. Never commits."""

    def __init__(
        self, clock: Clock, events: RiskEventLog, canceller: OpenOrderCanceller | None = None
    ) -> None:
        self._clock = clock
        self._events = events
        #: The order engine, which cancels the account's open orders (set at wiring).
        self.canceller = canceller

    def enable_cancel_on_disconnect(self, uow: UnitOfWork, principal: Principal) -> None:
        """The caller's credential (session or API key) asks that its account's open orders be
        cancelled when its stream connection drops."""
        if principal.credential_id is None or principal.user_id is None:
            raise ValidationError("This credential cannot register for cancel-on-disconnect.")
        row = uow.session.get(CancelOnDisconnectRow, principal.credential_id)
        if row is None:
            uow.session.add(
                CancelOnDisconnectRow(
                    credential_id=principal.credential_id,
                    account_id=principal.user_id,
                    enabled_at=self._clock.now(),
                    enabled_by=principal.actor,
                )
            )
            uow.session.flush()
        uow.audit(
            AuditEvent(
                action="risk.cancel-on-disconnect.enabled",
                subject=f"account:{principal.user_id}",
                details={"credential_id": principal.credential_id},
            )
        )

    def disable_cancel_on_disconnect(self, uow: UnitOfWork, principal: Principal) -> None:
        if principal.credential_id is None:
            return
        row = uow.session.get(CancelOnDisconnectRow, principal.credential_id)
        if row is not None:
            uow.session.delete(row)
            uow.session.flush()
            uow.audit(
                AuditEvent(
                    action="risk.cancel-on-disconnect.disabled",
                    subject=f"account:{row.account_id}",
                    details={"credential_id": principal.credential_id},
                )
            )

    def on_disconnect(self, uow: UnitOfWork, credential_id: str | None) -> bool:
        """Called by the stream when a connection drops: when its credential asked for it, the
        account's open orders are cancelled once this transaction commits. True if they will be."""
        if credential_id is None or len(credential_id) > 100:
            return False
        row = uow.session.get(CancelOnDisconnectRow, credential_id)
        if row is None:
            return False
        account_id = row.account_id
        self._events.record(
            uow,
            "cancel-on-disconnect",
            actor="system",
            detail="the connection dropped: the account's open orders are cancelled",
            account_id=account_id,
            data={"credential_id": credential_id},
        )
        uow.audit(
            AuditEvent(
                action="risk.cancel-on-disconnect.triggered",
                subject=f"account:{account_id}",
                details={"credential_id": credential_id},
                actor="system",
            )
        )
        canceller = self.canceller
        if canceller is None:
            log.warning("cancel-on-disconnect without an order canceller")
            return False

        def cancel() -> None:
            try:
                canceller.cancel_open_orders(account_id=account_id, reason=CANCEL_REASON_DISCONNECT)
            except Exception:
                log.error("cancel-on-disconnect failed", exc_info=True)

        uow.after_commit(cancel)
        return True

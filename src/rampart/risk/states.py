"""Trading states: ACTIVE, REDUCING (only exposure-reducing orders) for an account or the whole
platform, set by a person or by the system after a breached limit. HALTED is a halt
(`rampart.risk.halts`), whose lifting needs two people."""

from __future__ import annotations

from datetime import datetime

from rampart.access.domain import Permission, Principal, ensure_permission
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import ValidationError
from rampart.kernel.events import AuditEvent, OutboxMessage
from rampart.platform.uow import UnitOfWork
from rampart.risk.controls import ControlBook
from rampart.risk.db import TradingStateRow
from rampart.risk.domain import TradingState
from rampart.risk.events import RiskEventLog
from rampart.risk.halts import HaltsService
from rampart.risk.inputs import PLATFORM_SCOPE, clean_account, reason_text, require_person
from rampart.risk.revisions import bump_version

TOPIC_STATE = "risk.trading-state"


class TradingStatesService:
    """Changes and reports trading states. Takes a unit of work for changes; never commits."""

    def __init__(
        self, clock: Clock, book: ControlBook, events: RiskEventLog, halts: HaltsService
    ) -> None:
        self._clock = clock
        self._book = book
        self._events = events
        self._halts = halts

    def state_of(self, account_id: str) -> tuple[TradingState, str]:
        """The account's trading state as the order engine applies it, and why."""
        controls = self._book.controls
        if controls.market_halted or controls.platform_state is TradingState.HALTED:
            return TradingState.HALTED, "trading is halted market-wide"
        if account_id in controls.halted_accounts:
            return TradingState.HALTED, "trading on this account is halted"
        state = controls.account_states.get(account_id, TradingState.ACTIVE)
        reasons = self._book.state_reasons
        if state is TradingState.ACTIVE and controls.platform_state is TradingState.REDUCING:
            return TradingState.REDUCING, reasons.get("*", "the platform is reducing exposure")
        if state is TradingState.ACTIVE:
            return state, ""
        return state, reasons.get(account_id, "")

    def set_trading_state(
        self,
        uow: UnitOfWork,
        principal: Principal,
        account_id: str | None,
        state: TradingState,
        reason: str,
    ) -> None:
        """Move an account, or the platform, to ACTIVE or REDUCING. (HALTED is a halt: use
        `halt`, whose lifting needs two people.)"""
        ensure_permission(principal, Permission.COMPLIANCE_HALT)
        require_person(principal)
        reason = reason_text(reason)
        if state is TradingState.HALTED:
            raise ValidationError("Halting is done with a halt, whose resume needs two people.")
        if account_id is not None:
            clean_account(account_id)
        scope = PLATFORM_SCOPE if account_id is None else f"account:{account_id}"
        previous = uow.session.get(TradingStateRow, scope)
        before = previous.state if previous else "active"
        self._write_state(uow, scope, state, reason, principal.actor)
        bump_version(uow.session, self._clock.now())
        if state is TradingState.REDUCING:
            self._book.set_state(account_id, state, pin=True, reason=reason)
        else:
            # A person's decision replaces any automatic tightening pinned in memory: at once
            # here, and in every other process at its next batch (the version moved).
            uow.after_commit(
                lambda: self._book.set_state(account_id, state, pin=False, reason=reason)
            )
        self._events.record(
            uow,
            "state-change",
            actor=principal.actor,
            detail=reason,
            account_id=account_id,
            data={"state": state.value, "before": before},
        )
        uow.audit(
            AuditEvent(
                action="risk.state.changed",
                subject=scope,
                details={"state": state.value, "reason": reason},
            )
        )
        uow.emit(
            OutboxMessage(
                topic=TOPIC_STATE,
                payload={"account_id": account_id, "state": state.value, "cause": "manual"},
            )
        )

    def escalate(
        self,
        uow: UnitOfWork,
        account_id: str,
        state: TradingState,
        code: str,
        *,
        since: datetime | None = None,
        detail: str = "",
    ) -> None:
        """Move an account to REDUCING after a breached limit, or lock it (an account halt only a
        person can lift) after repeated executions. Done by the system, audited.

        `since`: when the breach was seen. A person's change of the account's state after that
        moment wins (it was made knowing more); if the breach still holds, the account's next
        order breaches again and the tightening is re-applied then, with its reason."""
        if state is TradingState.HALTED:
            self._halts.lock_account(uow, account_id, code)
            return
        scope = f"account:{account_id}"
        row = uow.session.get(TradingStateRow, scope)
        if row is not None and row.state != TradingState.ACTIVE:
            return
        if row is not None and since is not None and utc(row.changed_at) > since:
            self._book.set_state(account_id, TradingState(row.state), pin=False)
            return
        reason = f"automatic after {code}" + (f": {detail}" if detail else "")
        self._book.set_state(account_id, state, pin=True, reason=reason)
        self._write_state(uow, scope, state, reason[:1000], "system")
        bump_version(uow.session, self._clock.now())
        self._events.record(
            uow,
            "state-change",
            actor="system",
            detail=f"account moved to {state.value} after {code}",
            code=code,
            account_id=account_id,
            data={"state": state.value},
        )
        uow.audit(
            AuditEvent(
                action="risk.state.changed",
                subject=scope,
                details={"state": state.value, "cause": code, "automatic": True},
                actor="system",
            )
        )
        uow.emit(
            OutboxMessage(
                topic=TOPIC_STATE,
                payload={"account_id": account_id, "state": state.value, "cause": code},
            )
        )

    def _write_state(
        self, uow: UnitOfWork, scope: str, state: TradingState, reason: str, actor: str
    ) -> None:
        row = uow.session.get(TradingStateRow, scope)
        now = self._clock.now()
        if row is None:
            uow.session.add(
                TradingStateRow(
                    scope=scope, state=state.value, reason=reason, changed_at=now, changed_by=actor
                )
            )
        else:
            row.state, row.reason, row.changed_at, row.changed_by = state.value, reason, now, actor
        uow.session.flush()

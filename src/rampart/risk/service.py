"""Risk use cases: limits, trading states, halts and the four-eyes resume, the restricted list,
locates, cancel-on-disconnect, and the risk event log.

Every change is one transaction of the caller's unit of work, audited (`uow.audit`) and recorded
as a risk event; a halt also cancels pending orders, creates a regulator-notification record and
tells the affected users (outbox). Tightening changes reach the in-memory `ControlBook` at once;
loosening ones only after their commit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from rampart.access.domain import Permission, Principal, ensure_permission
from rampart.config import RiskSettings
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from rampart.kernel.events import AuditEvent, OutboxMessage
from rampart.kernel.ids import new_id
from rampart.platform.logging import get_logger
from rampart.platform.uow import UnitOfWork
from rampart.risk.controls import ControlBook
from rampart.risk.db import (
    CancelOnDisconnectRow,
    HaltRow,
    LocateRow,
    PriceBandRow,
    RegulatorNotificationRow,
    RestrictedSecurityRow,
    RiskEventRow,
    RiskLimitRow,
    TradingStateRow,
)
from rampart.risk.domain import (
    NS_PER_SECOND,
    ActivityTracker,
    HaltScope,
    InvalidLimitError,
    MarginMode,
    RiskConfig,
    RiskLimits,
    TradingControls,
    TradingState,
    parse_limit_overrides,
)
from rampart.risk.ports import OpenOrderCanceller
from rampart.risk.revisions import bump_version, read_version

log = get_logger(__name__)

PLATFORM_SCOPE = "platform"
MAX_REASON = 1000
MAX_PAGE = 200
REGULATOR = "FINRA"
TOPIC_HALTED = "risk.trading-halted"
TOPIC_RESUMED = "risk.trading-resumed"
TOPIC_STATE = "risk.trading-state"
#: Cancellation reason the order engine records on orders a halt cancels.
CANCEL_REASON_HALT = "trading-halted"
CANCEL_REASON_DISCONNECT = "cancel-on-disconnect"

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{0,15}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9:_\-]{1,100}$")


# --- errors --------------------------------------------------------------------------------
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


class PersonRequiredError(ForbiddenError):
    code = "person-required"
    title = "Only a person may do this, not an API key or the system"


class InvalidLimitsError(ValidationError):
    code = "invalid-limits"
    title = "The limits are not valid"


# --- views ---------------------------------------------------------------------------------
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


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why.")
    if len(reason) > MAX_REASON:
        raise ValidationError(f"The reason may be at most {MAX_REASON} characters.")
    return reason


def clean_symbol(symbol: str) -> str:
    symbol = symbol.strip().upper()
    if not _SYMBOL.match(symbol):
        raise ValidationError("A symbol is 1-16 letters, digits, '.' or '-'.")
    return symbol


def clean_account(account_id: str) -> str:
    if not _ACCOUNT.match(account_id):
        raise ValidationError("Not a valid account id.")
    return account_id


def reason_text(reason: str) -> str:
    """A stated reason, checked (non-empty, bounded)."""
    return _reason(reason)


def require_person(principal: Principal) -> None:
    _require_person(principal)


def _require_person(principal: Principal) -> None:
    # Halts and resumes are decisions people answer for: not a bot's key, not the system.
    if principal.user_id is None or principal.method == "apikey":
        raise PersonRequiredError


def risk_config(settings: RiskSettings) -> RiskConfig:
    return RiskConfig(
        default_collar_percent=settings.price_collar_percent,
        margin_mode=MarginMode(settings.margin_mode),
        fee_rate=settings.fee_rate,
        fee_minimum=settings.fee_minimum,
        long_margin_rate=settings.long_margin_rate,
        short_margin_rate=settings.short_margin_rate,
        short_initial_margin=settings.short_initial_margin,
        pdt_min_equity=settings.pdt_min_equity,
        duplicate_window_ns=int(settings.duplicate_window_seconds * NS_PER_SECOND),
        erroneous_window_ns=settings.erroneous_window_seconds * NS_PER_SECOND,
        execution_window_ns=settings.execution_window_seconds * NS_PER_SECOND,
    )


def default_limits(settings: RiskSettings) -> RiskLimits:
    return RiskLimits(
        max_order_quantity=settings.max_order_quantity,
        max_order_notional=settings.max_order_notional,
        max_position_quantity=settings.max_position_quantity,
        max_gross_exposure=settings.max_gross_exposure,
        daily_loss_limit=settings.daily_loss_limit,
        max_orders_per_day=settings.max_orders_per_day,
        max_trades_per_day=settings.max_trades_per_day,
        max_orders_per_second=settings.max_orders_per_second,
        max_window_notional=settings.max_window_notional,
        max_collar_strikes=settings.max_collar_strikes,
        max_executions_in_window=settings.max_executions_in_window,
    )


class RiskService:
    """Controls of trading. Takes a unit of work for changes and a session for reads; never
    commits."""

    def __init__(
        self,
        settings: RiskSettings,
        clock: Clock,
        book: ControlBook,
        activity: ActivityTracker,
        canceller: OpenOrderCanceller | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self.book = book
        self.activity = activity
        self.canceller = canceller

    # --- loading -----------------------------------------------------------------------------
    def load(self, session: Session) -> TradingControls:
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
        self.book.load(
            controls,
            platform_overrides,
            account_overrides,
            state_changes=changes,
            bands=bands,
            version=version,
        )
        return self.book.controls

    def controls_version(self, session: Session) -> int:
        """The stored version of the controls (compare with `book.version`)."""
        return read_version(session)

    def changed(self, uow: UnitOfWork) -> None:
        """Count a change of the controls in `uow`: every process reloads them before its next
        batch of orders once it commits."""
        bump_version(uow.session, self._clock.now())

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def default_band(self) -> tuple[Decimal, int]:
        return self._settings.price_band_percent, self._settings.price_band_window_seconds

    # --- events ------------------------------------------------------------------------------
    def record_event(self, uow: UnitOfWork, kind: str, **fields: Any) -> None:
        """Record a risk event (for the risk use cases kept in their own modules)."""
        self._event(uow, kind, **fields)

    def _event(
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

    def record_rejections(self, uow: UnitOfWork, records: list[RejectionRecord]) -> None:
        """Write refused orders as risk events and audit entries; apply escalations."""
        for record in records:
            self._event(
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
                self.escalate(
                    uow,
                    record.account_id,
                    record.escalate,
                    record.code,
                    since=record.occurred_at,
                    detail=record.detail,
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
            if self._active_halt(uow.session, HaltScope.ACCOUNT, account_id) is None:
                self._halt(
                    uow,
                    "system",
                    HaltScope.ACCOUNT,
                    account_id,
                    f"automatic lock after {code}: a person must re-enable trading",
                )
            return
        scope = f"account:{account_id}"
        row = uow.session.get(TradingStateRow, scope)
        if row is not None and row.state != TradingState.ACTIVE:
            return
        if row is not None and since is not None and utc(row.changed_at) > since:
            self.book.set_state(account_id, TradingState(row.state), pin=False)
            return
        reason = f"automatic after {code}" + (f": {detail}" if detail else "")
        self.book.set_state(account_id, state, pin=True, reason=reason)
        self._write_state(uow, scope, state, reason[:1000], "system")
        self.changed(uow)
        self._event(
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

    # --- limits ------------------------------------------------------------------------------
    def limits(self, session: Session, account_id: str | None) -> dict[str, Any]:
        """Effective limits of an account (or the platform), and the overrides they come from."""
        scope = PLATFORM_SCOPE if account_id is None else f"account:{account_id}"
        row = session.get(RiskLimitRow, scope)
        effective = (
            self.book.platform_limits if account_id is None else self.book.limits_for(account_id)
        )
        return {
            "scope": scope,
            "effective": effective.as_strings(),
            "overrides": dict(row.limits) if row else {},
            "version": row.version if row else 0,
        }

    def state_of(self, account_id: str) -> tuple[TradingState, str]:
        """The account's trading state as the order engine applies it, and why."""
        controls = self.book.controls
        if controls.market_halted or controls.platform_state is TradingState.HALTED:
            return TradingState.HALTED, "trading is halted market-wide"
        if account_id in controls.halted_accounts:
            return TradingState.HALTED, "trading on this account is halted"
        state = controls.account_states.get(account_id, TradingState.ACTIVE)
        reasons = self.book.state_reasons
        if state is TradingState.ACTIVE and controls.platform_state is TradingState.REDUCING:
            return TradingState.REDUCING, reasons.get("*", "the platform is reducing exposure")
        if state is TradingState.ACTIVE:
            return state, ""
        return state, reasons.get(account_id, "")

    def set_limits(
        self,
        uow: UnitOfWork,
        principal: Principal,
        account_id: str | None,
        changes: dict[str, str | None],
        reason: str,
    ) -> dict[str, Any]:
        """Change limit overrides (a value of None removes one, inheriting again). Admins only;
        audited with the values before and after."""
        ensure_permission(principal, Permission.RISK_LIMITS)
        _require_person(principal)
        return self._write_limits(uow, principal.actor, account_id, changes, reason)

    def set_platform_account_limits(
        self,
        uow: UnitOfWork,
        actor: str,
        account_id: str,
        changes: dict[str, str | None],
        reason: str,
    ) -> dict[str, Any]:
        """Explicit limits of a platform-owned account, set by the component that runs it (the
        demo market's liquidity providers and noise traders: `system:simulator`).

        Not reachable from any route or key: only in-process platform components call it, with
        a `system:` actor. The change is recorded exactly as an administrator's is (a
        `limit-change` risk event and an audit entry with the values before and after), and an
        administrator can override it afterwards like any other."""
        if not actor.startswith("system:") or account_id is None:
            raise PersonRequiredError
        return self._write_limits(uow, actor, account_id, changes, reason)

    def _write_limits(
        self,
        uow: UnitOfWork,
        actor: str,
        account_id: str | None,
        changes: dict[str, str | None],
        reason: str,
    ) -> dict[str, Any]:
        reason = _reason(reason)
        if account_id is not None:
            clean_account(account_id)
        if not changes or len(changes) > len(RiskLimits.NAMES):
            raise InvalidLimitsError("Give at least one limit to change.")
        scope = PLATFORM_SCOPE if account_id is None else f"account:{account_id}"
        row = uow.session.get(RiskLimitRow, scope, with_for_update=True)
        before = dict(row.limits) if row else {}
        after = dict(before)
        try:
            parsed = parse_limit_overrides({k: v for k, v in changes.items() if v is not None})
            for name in changes:
                if name not in RiskLimits.NAMES:
                    raise InvalidLimitError(f"unknown limit `{str(name)[:64]}`")
        except InvalidLimitError as exc:
            raise InvalidLimitsError(str(exc)) from None
        for name, value in changes.items():
            if value is None:
                after.pop(name, None)
            else:
                after[name] = str(parsed[name])
        now = self._clock.now()
        if row is None:
            row = RiskLimitRow(
                scope=scope, limits=after, version=1, updated_at=now, updated_by=actor
            )
            uow.session.add(row)
        else:
            row.limits = after
            row.version += 1
            row.updated_at = now
            row.updated_by = actor
        uow.session.flush()
        self._event(
            uow,
            "limit-change",
            actor=actor,
            detail=reason,
            account_id=account_id,
            data={"before": before, "after": after},
        )
        uow.audit(
            AuditEvent(
                action="risk.limits.changed",
                subject=scope,
                details={"before": before, "after": after, "reason": reason},
                actor=actor,
            )
        )
        self.changed(uow)
        uow.after_commit(lambda: self.book.set_limit_overrides(account_id, after))
        return {"scope": scope, "overrides": after, "version": row.version}

    # --- trading states ----------------------------------------------------------------------
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
        _require_person(principal)
        reason = _reason(reason)
        if state is TradingState.HALTED:
            raise ValidationError("Halting is done with a halt, whose resume needs two people.")
        if account_id is not None:
            clean_account(account_id)
        scope = PLATFORM_SCOPE if account_id is None else f"account:{account_id}"
        previous = uow.session.get(TradingStateRow, scope)
        before = previous.state if previous else "active"
        self._write_state(uow, scope, state, reason, principal.actor)
        self.changed(uow)
        if state is TradingState.REDUCING:
            self.book.set_state(account_id, state, pin=True, reason=reason)
        else:
            # A person's decision replaces any automatic tightening pinned in memory: at once
            # here, and in every other process at its next batch (the version moved).
            uow.after_commit(
                lambda: self.book.set_state(account_id, state, pin=False, reason=reason)
            )
        self._event(
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

    # --- halts -------------------------------------------------------------------------------
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
        _require_person(principal)
        reason = _reason(reason)
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

    def _halt(
        self, uow: UnitOfWork, actor: str, scope: HaltScope, target: str, reason: str
    ) -> HaltTicket:
        # In memory first: the engine refuses new orders from this moment, before anything else
        # runs; pending orders are cancelled as soon as the halt is durable (after commit, still
        # inside the request that declared it).
        self.book.add_halt(scope, target)
        self.changed(uow)
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
        self._event(
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
        _require_person(principal)
        reason = _reason(reason)
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
        self._event(
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
        _require_person(principal)
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
        self._event(
            uow,
            "resume",
            actor=principal.actor,
            detail=row.resume_reason or "",
            account_id=row.target if scope is HaltScope.ACCOUNT else None,
            symbol=row.target if scope is HaltScope.SYMBOL else None,
            data=facts,
        )
        uow.audit(AuditEvent(action="risk.halt.resumed", subject=f"halt:{row.id}", details=facts))
        self.changed(uow)
        uow.emit(OutboxMessage(topic=TOPIC_RESUMED, payload=facts))
        target = row.target

        def lift() -> None:
            self.book.remove_halt(scope, target)
            if scope is HaltScope.ACCOUNT:
                self.activity.forget_executions(target)

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
        self._event(
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

    # --- restricted list ---------------------------------------------------------------------
    def restrict(self, uow: UnitOfWork, principal: Principal, symbol: str, reason: str) -> None:
        ensure_permission(principal, Permission.COMPLIANCE_HALT)
        _require_person(principal)
        symbol, reason = clean_symbol(symbol), _reason(reason)
        if uow.session.get(RestrictedSecurityRow, symbol) is not None:
            return
        uow.session.add(
            RestrictedSecurityRow(
                symbol=symbol, reason=reason, added_by=principal.actor, added_at=self._clock.now()
            )
        )
        uow.session.flush()
        self.changed(uow)
        self.book.set_restricted(symbol, True)
        self._event(uow, "restricted", actor=principal.actor, detail=reason, symbol=symbol)
        uow.audit(
            AuditEvent(
                action="risk.restricted.added",
                subject=f"symbol:{symbol}",
                details={"reason": reason},
            )
        )

    def unrestrict(self, uow: UnitOfWork, principal: Principal, symbol: str, reason: str) -> None:
        ensure_permission(principal, Permission.COMPLIANCE_HALT)
        _require_person(principal)
        symbol, reason = clean_symbol(symbol), _reason(reason)
        row = uow.session.get(RestrictedSecurityRow, symbol)
        if row is None:
            raise NotFoundError(f"{symbol} is not on the restricted list.")
        uow.session.delete(row)
        uow.session.flush()
        self.changed(uow)
        self._event(uow, "unrestricted", actor=principal.actor, detail=reason, symbol=symbol)
        uow.audit(
            AuditEvent(
                action="risk.restricted.removed",
                subject=f"symbol:{symbol}",
                details={"reason": reason},
            )
        )
        uow.after_commit(lambda: self.book.set_restricted(symbol, False))

    def restricted(self, session: Session) -> list[dict[str, Any]]:
        rows = session.scalars(select(RestrictedSecurityRow).order_by(RestrictedSecurityRow.symbol))
        return [
            {"symbol": r.symbol, "reason": r.reason, "added_by": r.added_by,
             "added_at": utc(r.added_at).isoformat()}
            for r in rows
        ]  # fmt: skip

    # --- locates (Regulation SHO) ------------------------------------------------------------
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
        self._event(uow, "locate", actor=principal.actor, detail=f"located {quantity} {symbol}",
                    account_id=account_id, symbol=symbol, data=details)  # fmt: skip
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

    # --- cancel on disconnect ----------------------------------------------------------------
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

    def cancel_on_disconnect_enabled(self, session: Session, credential_id: str) -> bool:
        return session.get(CancelOnDisconnectRow, credential_id) is not None

    def on_disconnect(self, uow: UnitOfWork, credential_id: str | None) -> bool:
        """Called by the stream when a connection drops: when its credential asked for it, the
        account's open orders are cancelled once this transaction commits. True if they will be."""
        if credential_id is None or len(credential_id) > 100:
            return False
        row = uow.session.get(CancelOnDisconnectRow, credential_id)
        if row is None:
            return False
        account_id = row.account_id
        self._event(
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

"""Risk limits: the effective limits of an account or the platform, and changes of their
overrides (by an administrator, or by a platform component for its own accounts), audited with
the values before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from rampart.access.domain import Permission, Principal, ensure_permission
from rampart.kernel.clock import Clock
from rampart.kernel.errors import ValidationError
from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork
from rampart.risk.controls import ControlBook
from rampart.risk.db import RiskLimitRow
from rampart.risk.domain import InvalidLimitError, RiskLimits, parse_limit_overrides
from rampart.risk.events import RiskEventLog
from rampart.risk.inputs import (
    PLATFORM_SCOPE,
    PersonRequiredError,
    clean_account,
    reason_text,
    require_person,
)
from rampart.risk.revisions import bump_version


class InvalidLimitsError(ValidationError):
    code = "invalid-limits"
    title = "The limits are not valid"


class LimitsService:
    """Reads and changes limit overrides. Takes a unit of work for changes; never commits."""

    def __init__(self, clock: Clock, book: ControlBook, events: RiskEventLog) -> None:
        self._clock = clock
        self._book = book
        self._events = events

    def limits(self, session: Session, account_id: str | None) -> dict[str, Any]:
        """Effective limits of an account (or the platform), and the overrides they come from."""
        scope = PLATFORM_SCOPE if account_id is None else f"account:{account_id}"
        row = session.get(RiskLimitRow, scope)
        effective = (
            self._book.platform_limits if account_id is None else self._book.limits_for(account_id)
        )
        return {
            "scope": scope,
            "effective": effective.as_strings(),
            "overrides": dict(row.limits) if row else {},
            "version": row.version if row else 0,
        }

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
        require_person(principal)
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
        reason = reason_text(reason)
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
        self._events.record(
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
        bump_version(uow.session, self._clock.now())
        uow.after_commit(lambda: self._book.set_limit_overrides(account_id, after))
        return {"scope": scope, "overrides": after, "version": row.version}

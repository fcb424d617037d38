"""Access use cases: granting and revoking roles, custom roles, and what a user may do now.

Every grant and revocation is audited in the same transaction. Grants are never deleted; a
time-limited grant lapses by itself because every read asks "active at `now`?".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from rampart.access.db import CustomRoleRow, RoleAssignmentRow
from rampart.access.domain import (
    BUILTIN_ROLES,
    Principal,
    SelfGrantError,
    UnknownRoleError,
    ensure_permission,
    grant_is_active,
    permissions_for,
    validate_custom_role,
)
from rampart.access.domain import Permission as P
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import NotFoundError, ValidationError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.platform.uow import UnitOfWork

MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class RoleGrant:
    id: str
    user_id: str
    role: str
    granted_by: str | None
    reason: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def active_at(self, now: datetime) -> bool:
        return grant_is_active(self.expires_at, self.revoked_at, now)


@dataclass(frozen=True, slots=True)
class CustomRole:
    name: str
    permissions: frozenset[str]
    description: str | None


def check_grant(
    known: bool,
    user_id: str,
    role: str,
    granted_by: str | None,
    expires_at: datetime | None,
    reason: str | None,
    now: datetime,
) -> None:
    """Refuse a grant of an unknown role, one that would end in the past, an overlong reason
    and anyone granting themselves a role."""
    if not known:
        raise UnknownRoleError(f"There is no role `{role[:64]}`.")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValidationError("`expires_at` needs a timezone.")
        if expires_at <= now:
            raise ValidationError("`expires_at` must be in the future.")
    if reason is not None and len(reason) > MAX_REASON:
        raise ValidationError(f"The reason may be at most {MAX_REASON} characters.")
    if granted_by is not None and granted_by == f"user:{user_id}":
        raise SelfGrantError


def covers(current_end: datetime | None, wanted_end: datetime | None) -> bool:
    """Whether an active grant ending at `current_end` (None: never) already lasts as long as
    a new one ending at `wanted_end` would: then assigning the role again changes nothing."""
    return current_end is None or (wanted_end is not None and current_end >= wanted_end)


def granted_event(grant: RoleGrant, expires_at: datetime | None) -> AuditEvent:
    """The audit entry of a grant, with its end as the granter gave it."""
    return AuditEvent(
        action="access.role.granted",
        subject=f"user:{grant.user_id}",
        details={
            "role": grant.role,
            "grant_id": grant.id,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "reason": grant.reason,
            "granted_by": grant.granted_by,
        },
    )


def _grant(row: RoleAssignmentRow) -> RoleGrant:
    return RoleGrant(
        id=row.id,
        user_id=row.user_id,
        role=row.role,
        granted_by=row.granted_by,
        reason=row.reason,
        created_at=utc(row.created_at),
        expires_at=utc(row.expires_at) if row.expires_at else None,
        revoked_at=utc(row.revoked_at) if row.revoked_at else None,
    )


class AccessService:
    """Roles and permissions of users. Takes a unit of work for changes, a session for reads."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    # --- changes ----------------------------------------------------------------------------
    def assign_role(
        self,
        uow: UnitOfWork,
        user_id: str,
        role: str,
        *,
        granted_by: str | None = None,
        expires_at: datetime | None = None,
        reason: str | None = None,
    ) -> RoleGrant:
        """Give `user_id` the role, until `expires_at` when given. Idempotent for a grant that
        already covers as long a time."""
        now = self._clock.now()
        session = uow.session
        known = role in BUILTIN_ROLES or session.get(CustomRoleRow, role) is not None
        check_grant(known, user_id, role, granted_by, expires_at, reason, now)
        for existing in self._active_rows(session, user_id, now):
            if existing.role == role and covers(
                utc(existing.expires_at) if existing.expires_at else None, expires_at
            ):
                return _grant(existing)
        row = RoleAssignmentRow(
            id=new_id(),
            user_id=user_id,
            role=role,
            granted_by=granted_by,
            reason=reason,
            created_at=now,
            expires_at=expires_at,
        )
        session.add(row)
        session.flush()
        grant = _grant(row)
        uow.audit(granted_event(grant, expires_at))
        return grant

    def grant_as(
        self,
        uow: UnitOfWork,
        granter: Principal,
        user_id: str,
        role: str,
        *,
        expires_at: datetime | None,
        reason: str,
    ) -> RoleGrant:
        """An administrator's grant: needs `admin:users`, a reason, and someone else's account."""
        ensure_permission(granter, P.ADMIN_USERS)
        if not reason.strip():
            raise ValidationError("Say why the role is granted.")
        if granter.user_id == user_id:
            raise SelfGrantError
        return self.assign_role(
            uow, user_id, role, granted_by=granter.actor, expires_at=expires_at, reason=reason
        )

    def revoke_role(
        self,
        uow: UnitOfWork,
        user_id: str,
        role: str,
        *,
        revoked_by: str | None = None,
        reason: str | None = None,
    ) -> int:
        """End every active grant of `role` to the user now; returns how many ended."""
        now = self._clock.now()
        if revoked_by is not None and revoked_by == f"user:{user_id}":
            raise SelfGrantError
        ended = 0
        for row in self._active_rows(uow.session, user_id, now):
            if row.role == role:
                row.revoked_at = now
                row.revoked_by = revoked_by
                ended += 1
        if not ended:
            raise NotFoundError("The user does not hold that role.")
        uow.session.flush()
        uow.audit(
            AuditEvent(
                action="access.role.revoked",
                subject=f"user:{user_id}",
                details={"role": role, "grants": ended, "reason": reason, "revoked_by": revoked_by},
            )
        )
        return ended

    def define_role(
        self,
        uow: UnitOfWork,
        name: str,
        permissions: set[str] | frozenset[str],
        *,
        description: str | None = None,
        defined_by: str | None = None,
    ) -> CustomRole:
        """Create or redefine a custom role; holders get the new permissions at once."""
        perms = validate_custom_role(name, permissions)
        now = self._clock.now()
        row = uow.session.get(CustomRoleRow, name)
        before = sorted(row.permissions) if row else None
        if row is None:
            row = CustomRoleRow(
                name=name,
                permissions=sorted(perms),
                description=description,
                created_at=now,
                created_by=defined_by,
                updated_at=now,
            )
            uow.session.add(row)
        else:
            row.permissions = sorted(perms)
            row.description = description
            row.updated_at = now
        uow.session.flush()
        uow.audit(
            AuditEvent(
                action="access.role.defined",
                subject=f"role:{name}",
                details={"permissions": sorted(perms), "before": before},
            )
        )
        return CustomRole(name=name, permissions=perms, description=description)

    # --- reads ------------------------------------------------------------------------------
    def _active_rows(
        self, session: Session, user_id: str, now: datetime
    ) -> list[RoleAssignmentRow]:
        rows = session.scalars(
            select(RoleAssignmentRow).where(
                RoleAssignmentRow.user_id == user_id,
                RoleAssignmentRow.revoked_at.is_(None),
                or_(RoleAssignmentRow.expires_at.is_(None), RoleAssignmentRow.expires_at > now),
            )
        ).all()
        return list(rows)

    def roles_of(self, session: Session, user_id: str, now: datetime) -> frozenset[str]:
        """The roles the user holds at `now`: lapsed and revoked grants are left out."""
        return frozenset(row.role for row in self._active_rows(session, user_id, now))

    def custom_roles(
        self, session: Session, names: set[str] | frozenset[str] | None = None
    ) -> dict[str, frozenset[str]]:
        query = select(CustomRoleRow)
        if names is not None:
            if not names:
                return {}
            query = query.where(CustomRoleRow.name.in_(sorted(names)))
        return {row.name: frozenset(row.permissions) for row in session.scalars(query)}

    def permissions_of(self, session: Session, user_id: str, now: datetime) -> frozenset[str]:
        """Every permission the user's active roles give at `now`."""
        roles = self.roles_of(session, user_id, now)
        custom_names = {r for r in roles if r not in BUILTIN_ROLES}
        return permissions_for(roles, self.custom_roles(session, custom_names))

    def grants_of(self, session: Session, user_id: str) -> list[RoleGrant]:
        """Every grant the user ever had, newest first (for administrators and auditors)."""
        rows = session.scalars(
            select(RoleAssignmentRow)
            .where(RoleAssignmentRow.user_id == user_id)
            .order_by(RoleAssignmentRow.created_at.desc(), RoleAssignmentRow.id.desc())
            .limit(500)
        ).all()
        return [_grant(r) for r in rows]

    def list_roles(self, session: Session) -> dict[str, frozenset[str]]:
        """Built-in and custom roles with their permissions."""
        roles = {str(k): frozenset(str(p) for p in v) for k, v in BUILTIN_ROLES.items()}
        roles.update(self.custom_roles(session))
        return roles

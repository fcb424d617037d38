"""`RoleDirectory` in memory, for service tests that need roles without a database. It knows
the built-in roles only (custom roles are defined in the database by administrators)."""

from __future__ import annotations

from datetime import datetime

from rampart.access.domain import BUILTIN_ROLES, permissions_for
from rampart.access.service import RoleGrant, check_grant, covers, granted_event
from rampart.kernel.clock import Clock
from rampart.kernel.ids import new_id
from rampart.platform.memory import Transaction


class InMemoryRoles:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._grants: list[RoleGrant] = []

    def assign_role(
        self,
        uow: Transaction,
        user_id: str,
        role: str,
        *,
        granted_by: str | None = None,
        expires_at: datetime | None = None,
        reason: str | None = None,
    ) -> RoleGrant:
        now = self._clock.now()
        check_grant(role in BUILTIN_ROLES, user_id, role, granted_by, expires_at, reason, now)
        for existing in self._active(user_id, now):
            if existing.role == role and covers(existing.expires_at, expires_at):
                return existing
        grant = RoleGrant(new_id(), user_id, role, granted_by, reason, now, expires_at, None)
        uow.after_commit(lambda: self._grants.append(grant))
        uow.audit(granted_event(grant, expires_at))
        return grant

    def _active(self, user_id: str, now: datetime) -> list[RoleGrant]:
        return [g for g in self._grants if g.user_id == user_id and g.active_at(now)]

    def roles_of(self, session: object, user_id: str, now: datetime) -> frozenset[str]:
        return frozenset(g.role for g in self._active(user_id, now))

    def permissions_of(self, session: object, user_id: str, now: datetime) -> frozenset[str]:
        return permissions_for(self.roles_of(session, user_id, now))

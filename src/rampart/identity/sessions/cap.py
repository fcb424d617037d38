"""The per-account cap on live sessions: how many an account may hold, and making room for one
more at sign-in by ending those used least recently (the sign-in tells the owner which)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from rampart.config import IdentitySettings
from rampart.identity.db import SessionRow, UserRow
from rampart.identity.sessions.checks import SessionCache, SessionChecks
from rampart.identity.sessions.ending import SessionEnding
from rampart.identity.sessions.model import ENDED_AT_SESSION_LIMIT, SessionView, session_view
from rampart.kernel.clock import Clock
from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork


class SessionCap:
    def __init__(
        self,
        clock: Clock,
        settings: IdentitySettings,
        checks: SessionChecks,
        ending: SessionEnding,
        cache: SessionCache,
    ) -> None:
        self._clock = clock
        self._settings = settings
        self._checks = checks
        self._ending = ending
        self._cache = cache

    def session_limit(self, session: Session, user_id: str) -> int:
        """How many live sessions the account may hold: `max_concurrent_sessions`, or the
        staff cap (never higher) for an account holding a staff role."""
        cfg = self._settings
        if self._checks.is_staff(session, user_id):
            return min(cfg.staff_max_concurrent_sessions, cfg.max_concurrent_sessions)
        return cfg.max_concurrent_sessions

    def make_room(self, uow: UnitOfWork, user_id: str) -> list[SessionView]:
        """Before a new session is created: end the sessions used least recently until one
        more fits under the account's cap; returns those ended (the caller tells the owner).

        Ending the oldest, rather than refusing the new sign-in, is what brokers do: the person
        signing in now is the one present, and a forgotten session elsewhere is the likelier
        thing to go. The account's row is locked first, so two sign-ins at once cannot both
        count the same free place (PostgreSQL; SQLite writers are serialised anyway)."""
        now = self._clock.now()
        uow.session.execute(select(UserRow.id).where(UserRow.id == user_id).with_for_update())
        live = list(
            uow.session.scalars(
                select(SessionRow)
                .where(
                    SessionRow.user_id == user_id,
                    SessionRow.revoked_at.is_(None),
                    SessionRow.expires_at > now,
                )
                .order_by(SessionRow.last_seen_at, SessionRow.created_at, SessionRow.id)
            )
        )
        excess = len(live) - self.session_limit(uow.session, user_id) + 1
        if excess <= 0:
            return []
        ended = live[:excess]
        ids = self._ending.revoke_rows(uow, ended, ENDED_AT_SESSION_LIMIT)
        for row in ended:
            uow.audit(
                AuditEvent(
                    action="auth.session.revoked",
                    subject=f"user:{user_id}",
                    details={"session_id": row.id, "reason": ENDED_AT_SESSION_LIMIT},
                )
            )
        self._cache.forget_after_commit(uow, session_ids=ids)
        return [session_view(row) for row in ended]

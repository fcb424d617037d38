"""Ending sessions: one, all of a user's, a device's, everyone's; and the endings other flows
cause (a browser signing in again, a staff member's factors reset). Each ending kills the unused
refresh tokens of the sessions concerned and forgets their cached state after the commit."""

from __future__ import annotations

from sqlalchemy import select, update

from rampart.identity.db import DeviceRow, RefreshTokenRow, SessionRow, UserRow
from rampart.identity.domain import token_hash
from rampart.identity.sessions.checks import SessionCache, SessionChecks
from rampart.identity.sessions.model import ENDED_BY_FACTOR_RESET, ENDED_BY_OPERATOR
from rampart.kernel.clock import Clock
from rampart.kernel.errors import NotFoundError
from rampart.kernel.events import AuditEvent
from rampart.platform.uow import UnitOfWork


class SessionEnding:
    def __init__(self, clock: Clock, checks: SessionChecks, cache: SessionCache) -> None:
        self._clock = clock
        self._checks = checks
        self._cache = cache

    def revoke_rows(self, uow: UnitOfWork, rows: list[SessionRow], reason: str) -> set[str]:
        """Mark the sessions ended (those still live, with `reason`) and end the unused refresh
        tokens of all of them; returns their ids. The caller audits and forgets."""
        now = self._clock.now()
        ids: set[str] = set()
        for row in rows:
            if row.revoked_at is None:
                row.revoked_at = now
                row.revoke_reason = reason
            ids.add(row.id)
        if ids:
            # Unused refresh tokens of these families die with them.
            uow.session.execute(
                update(RefreshTokenRow)
                .where(
                    RefreshTokenRow.session_id.in_(sorted(ids)), RefreshTokenRow.used_at.is_(None)
                )
                .values(used_at=now)
            )
        uow.session.flush()
        return ids

    def end_after_factor_reset(self, uow: UnitOfWork, user_id: str) -> int:
        """Support reset a user's second factors: a staff member's sessions end, with their
        refresh tokens. Each of those sessions carries the proof of a security key that no
        longer counts (`webauthn_at`), which is what makes staff permissions count; the person
        signs in again with the key they enrol next."""
        if not self._checks.is_staff(uow.session, user_id):
            return 0
        return self.revoke_all(uow, user_id, reason=ENDED_BY_FACTOR_RESET)

    def end_replaced(self, uow: UnitOfWork, previous_secret: str) -> None:
        """A browser signed in again: end the session of the cookie it held (whoever's it was)."""
        row = uow.session.scalar(
            select(SessionRow).where(SessionRow.secret_hash == token_hash(previous_secret))
        )
        if row is None or row.revoked_at is not None:
            return
        ids = self.revoke_rows(uow, [row], "replaced-by-sign-in")
        uow.audit(
            AuditEvent(
                action="auth.session.revoked",
                subject=f"user:{row.user_id}",
                details={"session_id": row.id, "reason": "replaced-by-sign-in"},
            )
        )
        self._cache.forget_after_commit(uow, session_ids=ids)

    def revoke_everyone(self, uow: UnitOfWork, *, reason: str, actor: str | None = None) -> int:
        """End every live session of every user, and refuse every access token issued until now
        (an operator's answer to a suspected breach). The caller is signed out too. `reason`
        is the operator's words, kept in the audit log."""
        now = self._clock.now()
        ended = uow.session.execute(
            update(SessionRow)
            .where(SessionRow.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=ENDED_BY_OPERATOR)
        ).rowcount  # type: ignore[attr-defined]
        uow.session.execute(
            update(RefreshTokenRow).where(RefreshTokenRow.used_at.is_(None)).values(used_at=now)
        )
        uow.session.execute(update(UserRow).values(tokens_not_before=now))
        uow.audit(
            AuditEvent(
                action="auth.session.revoked_everyone",
                details={"sessions": int(ended), "reason": reason[:200]},
                actor=actor,
            )
        )
        self._cache.forget_everything_after_commit(uow)
        return int(ended)

    def end_user_sessions(
        self, uow: UnitOfWork, user_id: str, *, reason: str, actor: str | None = None
    ) -> int:
        """An administrator ends every session and token of one user (audited with `reason`;
        `actor` defaults to the request's)."""
        user = uow.session.get(UserRow, user_id)
        if user is None:
            raise NotFoundError("No such user.")
        ended = self.revoke_all(uow, user_id, reason=ENDED_BY_OPERATOR)
        uow.audit(
            AuditEvent(
                action="auth.session.ended_by_operator",
                subject=f"user:{user_id}",
                details={"sessions": ended, "reason": reason[:200]},
                actor=actor,
            )
        )
        return ended

    def forget_user(self, uow: UnitOfWork, user_id: str) -> None:
        """Reload the user's sessions from the database after this commit (permissions moved)."""
        self._cache.forget_after_commit(uow, session_ids=set(), user_id=user_id)

    def revoke(self, uow: UnitOfWork, user_id: str, session_id: str, *, reason: str) -> SessionRow:
        """End one of the user's sessions; another user's session is `NotFoundError`."""
        row = uow.session.get(SessionRow, session_id)
        if row is None or row.user_id != user_id:
            raise NotFoundError("No such session.")
        ids = self.revoke_rows(uow, [row], reason)
        uow.audit(
            AuditEvent(
                action="auth.session.revoked",
                subject=f"user:{user_id}",
                details={"session_id": session_id, "reason": reason},
            )
        )
        self._cache.forget_after_commit(uow, session_ids=ids)
        return row

    def revoke_all(
        self,
        uow: UnitOfWork,
        user_id: str,
        *,
        reason: str,
        keep_session_id: str | None = None,
        not_before: bool = True,
    ) -> int:
        """End every session of the user (but `keep_session_id`); with `not_before`, also refuse
        every access token issued until now, whatever its session."""
        rows = list(
            uow.session.scalars(
                select(SessionRow).where(
                    SessionRow.user_id == user_id, SessionRow.revoked_at.is_(None)
                )
            )
        )
        rows = [r for r in rows if r.id != keep_session_id]
        ids = self.revoke_rows(uow, rows, reason)
        if not_before:
            user = uow.session.get(UserRow, user_id)
            if user is not None:
                user.tokens_not_before = self._clock.now()
        uow.audit(
            AuditEvent(
                action="auth.session.revoked_all",
                subject=f"user:{user_id}",
                details={"sessions": len(ids), "reason": reason},
            )
        )
        self._cache.forget_after_commit(
            uow, session_ids=ids, user_id=user_id if not_before else None
        )
        return len(ids)

    def revoke_device(self, uow: UnitOfWork, user_id: str, device_id: str) -> int:
        device = uow.session.get(DeviceRow, device_id)
        if device is None or device.user_id != user_id or device.revoked_at is not None:
            raise NotFoundError("No such device.")
        device.revoked_at = self._clock.now()
        rows = list(
            uow.session.scalars(
                select(SessionRow).where(
                    SessionRow.device_id == device_id, SessionRow.revoked_at.is_(None)
                )
            )
        )
        ids = self.revoke_rows(uow, rows, "device-revoked")
        uow.audit(
            AuditEvent(
                action="auth.device.revoked",
                subject=f"user:{user_id}",
                details={"device_id": device_id, "sessions": len(ids)},
            )
        )
        self._cache.forget_after_commit(uow, session_ids=ids)
        return len(ids)

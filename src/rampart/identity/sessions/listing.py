"""What a user sees of their sessions and devices."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from rampart.config import IdentitySettings
from rampart.identity.db import DeviceRow, SessionRow
from rampart.identity.sessions.model import KIND_BROWSER, DeviceView, SessionView, session_view
from rampart.kernel.clock import Clock, utc


class SessionListing:
    def __init__(self, clock: Clock, settings: IdentitySettings) -> None:
        self._clock = clock
        self._settings = settings

    def list_sessions(self, session: Session, user_id: str) -> list[SessionView]:
        """The user's live sessions, most recently active first (idle browser ones left out)."""
        now = self._clock.now()
        idle_since = now - timedelta(minutes=self._settings.session_idle_minutes)
        rows = session.scalars(
            select(SessionRow)
            .where(
                SessionRow.user_id == user_id,
                SessionRow.revoked_at.is_(None),
                SessionRow.expires_at > now,
            )
            .order_by(SessionRow.last_seen_at.desc())
            .limit(self._settings.max_sessions_listed)
        )
        return [
            session_view(r)
            for r in rows
            if r.kind != KIND_BROWSER or utc(r.last_seen_at) >= idle_since
        ]

    def list_devices(self, session: Session, user_id: str) -> list[DeviceView]:
        rows = session.scalars(
            select(DeviceRow)
            .where(DeviceRow.user_id == user_id, DeviceRow.revoked_at.is_(None))
            .order_by(DeviceRow.last_seen_at.desc())
            .limit(self._settings.max_sessions_listed)
        )
        return [
            DeviceView(
                id=r.id,
                user_agent=r.user_agent,
                last_ip=r.last_ip,
                created_at=utc(r.created_at),
                last_seen_at=utc(r.last_seen_at),
            )
            for r in rows
        ]

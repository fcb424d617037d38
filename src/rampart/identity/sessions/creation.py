"""Creating sessions at sign-in (and recording the device they come from), and stamping or
rotating a live session after a step-up."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from rampart.config import IdentitySettings
from rampart.identity.db import DeviceRow, SessionRow
from rampart.identity.domain import new_token, token_hash
from rampart.identity.sessions.checks import SessionCache
from rampart.identity.sessions.model import KIND_BROWSER, ClientInfo
from rampart.kernel.clock import Clock
from rampart.kernel.errors import NotFoundError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.platform.uow import UnitOfWork


class SessionCreation:
    def __init__(self, clock: Clock, settings: IdentitySettings, cache: SessionCache) -> None:
        self._clock = clock
        self._settings = settings
        self._cache = cache

    def record_device(self, uow: UnitOfWork, user_id: str, client: ClientInfo) -> tuple[str, bool]:
        """The device's id, and whether it is new to this user (first sign-ins excepted)."""
        now = self._clock.now()
        key = client.effective_device_key()
        session = uow.session
        device = session.scalar(
            select(DeviceRow).where(DeviceRow.user_id == user_id, DeviceRow.device_key == key)
        )
        if device is not None and device.revoked_at is None:
            device.last_seen_at = now
            device.last_ip = client.ip
            device.user_agent = client.user_agent
            return device.id, False
        has_any = (
            session.scalar(select(DeviceRow.id).where(DeviceRow.user_id == user_id).limit(1))
            is not None
        )
        if device is None:
            device = DeviceRow(
                id=new_id(),
                user_id=user_id,
                device_key=key,
                user_agent=client.user_agent,
                first_ip=client.ip,
                last_ip=client.ip,
                created_at=now,
                last_seen_at=now,
            )
            session.add(device)
        else:
            # A revoked device that signs in again is treated as new: the user is told.
            device.revoked_at = None
            device.last_seen_at = now
            device.last_ip = client.ip
            device.user_agent = client.user_agent
        session.flush()
        return device.id, has_any

    def create(
        self,
        uow: UnitOfWork,
        user_id: str,
        kind: str,
        client: ClientInfo,
        device_id: str | None,
        *,
        mfa_at: datetime | None = None,
        webauthn_at: datetime | None = None,
        secret: str | None = None,
    ) -> SessionRow:
        now = self._clock.now()
        if kind == KIND_BROWSER:
            lifetime = timedelta(hours=self._settings.session_absolute_hours)
        else:
            lifetime = timedelta(hours=self._settings.refresh_token_hours) * 30
        row = SessionRow(
            id=new_id(),
            user_id=user_id,
            kind=kind,
            secret_hash=token_hash(secret) if secret else None,
            device_id=device_id,
            user_agent=client.user_agent,
            ip=client.ip,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
            mfa_at=mfa_at,
            webauthn_at=webauthn_at,
        )
        uow.session.add(row)
        uow.session.flush()
        return row

    def record_second_factor(
        self, uow: UnitOfWork, user_id: str, session_id: str, *, webauthn: bool = False
    ) -> datetime:
        """Stamp the session with a second factor proven now (step-up); returns the time.
        `webauthn` says the factor was a security key or passkey (what staff actions need)."""
        row = uow.session.get(SessionRow, session_id)
        if row is None or row.user_id != user_id or row.revoked_at is not None:
            raise NotFoundError("No such session.")
        now = self._clock.now()
        row.mfa_at = now
        if webauthn:
            row.webauthn_at = now
        uow.audit(
            AuditEvent(
                action="auth.session.second_factor",
                subject=f"user:{user_id}",
                details={"session_id": session_id, "webauthn": webauthn},
            )
        )
        self._cache.forget_after_commit(uow, session_ids={session_id})
        return now

    def rotate_secret(self, uow: UnitOfWork, user_id: str, session_id: str) -> str:
        """Give a browser session a new cookie secret (after a step-up); the old cookie stops
        working with this commit, so one planted or copied before the step-up gains nothing."""
        row = uow.session.get(SessionRow, session_id)
        if row is None or row.user_id != user_id or row.revoked_at is not None:
            raise NotFoundError("No such session.")
        secret = new_token()
        row.secret_hash = token_hash(secret)
        uow.audit(
            AuditEvent(
                action="auth.session.rotated",
                subject=f"user:{user_id}",
                details={"session_id": session_id},
            )
        )
        self._cache.forget_after_commit(uow, session_ids={session_id})
        return secret

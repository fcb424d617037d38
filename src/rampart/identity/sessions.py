"""Sessions and devices: creating, listing and revoking them, and the revocation check every
authenticated request makes.

The revocation check reads a session's state (revoked? expired? the user's not-before, roles and
permissions) from the database and keeps it for `revocation_cache_seconds`. A revocation made in
this process empties the cached entries at once (after its commit); one made by another process
is seen here within that bound. That bound is the whole staleness story: verified-token caching
never skips this check.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rampart.access.domain import is_staff
from rampart.access.ports import RoleDirectory
from rampart.config import IdentitySettings
from rampart.identity.db import DeviceRow, RefreshTokenRow, SessionRow, UserRow
from rampart.identity.domain import AccountStatus, effective_permissions, new_token, token_hash
from rampart.identity.tokens import AccessTokens
from rampart.kernel.clock import Clock, utc
from rampart.kernel.errors import NotFoundError
from rampart.kernel.events import AuditEvent
from rampart.kernel.ids import new_id
from rampart.platform.cache import TTLCache
from rampart.platform.db import Database
from rampart.platform.uow import UnitOfWork

KIND_BROWSER = "browser"
KIND_API = "api"
#: A browser session's last-seen time is written at most this often (the idle timeout is
#: measured in minutes; a write per request would cost more than it tells).
TOUCH_SECONDS = 60
#: The revoke reason of sessions an administrator ended (their words go to the audit log).
ENDED_BY_OPERATOR = "ended-by-operator"
#: The revoke reason of a staff member's sessions after support reset their factors.
ENDED_BY_FACTOR_RESET = "factor-reset"
#: The revoke reason of a session ended because its account signed in once more at the cap.
ENDED_AT_SESSION_LIMIT = "session-limit"


@dataclass(frozen=True, slots=True)
class SessionState:
    """What authenticating a request needs to know about its session, as of `loaded_at`."""

    session_id: str
    user_id: str
    kind: str
    active: bool
    expires_at: float
    last_seen_at: float
    #: Epoch seconds, whole: access tokens issued earlier are refused.
    not_before: int
    roles: frozenset[str]
    permissions: frozenset[str]
    email_verified: bool
    mfa_at: float | None
    webauthn_at: float | None = None


@dataclass(frozen=True, slots=True)
class SessionView:
    id: str
    kind: str
    device_id: str | None
    user_agent: str | None
    ip: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceView:
    id: str
    user_agent: str | None
    last_ip: str | None
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who is signing in from where: the device id the client gave, its user agent and IP."""

    device_key: str | None
    user_agent: str | None
    ip: str | None
    #: The session cookie this browser still holds, if any: signing in again ends that session
    #: (its cookie is replaced; nothing should keep working through a copy of it).
    previous_session: str | None = None

    def effective_device_key(self) -> str:
        # A client that names no device is recognised by its user agent, so that a change of
        # browser still counts as a new device.
        if self.device_key:
            return self.device_key
        return "ua:" + hashlib.sha256((self.user_agent or "").encode()).hexdigest()[:40]


def _view(row: SessionRow) -> SessionView:
    return SessionView(
        id=row.id,
        kind=row.kind,
        device_id=row.device_id,
        user_agent=row.user_agent,
        ip=row.ip,
        created_at=utc(row.created_at),
        last_seen_at=utc(row.last_seen_at),
        expires_at=utc(row.expires_at),
    )


def csrf_token_for(session_secret: str) -> str:
    """The anti-forgery token of a browser session: derived from the cookie's secret, so it is
    stored nowhere, differs per session, and cannot be computed without the HttpOnly cookie."""
    return hmac.new(session_secret.encode(), b"rampart-csrf", hashlib.sha256).hexdigest()


class SessionStore:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: IdentitySettings,
        roles: RoleDirectory,
        tokens: AccessTokens,
    ) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._roles = roles
        self._tokens = tokens
        ttl = max(settings.revocation_cache_seconds, 1e-6)
        self._by_id: TTLCache[str, SessionState] = TTLCache(
            100_000, clock=clock.monotonic, default_ttl=ttl
        )
        self._by_secret: TTLCache[str, SessionState] = TTLCache(
            100_000, clock=clock.monotonic, default_ttl=ttl
        )
        self._cache_enabled = settings.revocation_cache_seconds > 0

    # --- creating ----------------------------------------------------------------------------
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

    def session_limit(self, session: Session, user_id: str) -> int:
        """How many live sessions the account may hold: `max_concurrent_sessions`, or the
        staff cap (never higher) for an account holding a staff role."""
        cfg = self._settings
        if self.is_staff(session, user_id):
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
        ids = self._revoke_rows(uow, ended, ENDED_AT_SESSION_LIMIT)
        for row in ended:
            uow.audit(
                AuditEvent(
                    action="auth.session.revoked",
                    subject=f"user:{user_id}",
                    details={"session_id": row.id, "reason": ENDED_AT_SESSION_LIMIT},
                )
            )
        self._forget_after_commit(uow, session_ids=ids)
        return [_view(row) for row in ended]

    # --- the per-request check --------------------------------------------------------------
    def _load(self, session: Session, row: SessionRow) -> SessionState:
        now = self._clock.now()
        user = session.get(UserRow, row.user_id)
        active = (
            row.revoked_at is None
            and user is not None
            and user.status == AccountStatus.ACTIVE
            and utc(row.expires_at) > now
        )
        roles: frozenset[str] = frozenset()
        permissions: frozenset[str] = frozenset()
        if active and user is not None:
            roles = self._roles.roles_of(session, user.id, now)
            permissions = effective_permissions(
                self._roles.permissions_of(session, user.id, now),
                user.email_verified_at is not None,
            )
        not_before = 0
        if user is not None and user.tokens_not_before is not None:
            not_before = int(utc(user.tokens_not_before).timestamp())
        return SessionState(
            session_id=row.id,
            user_id=row.user_id,
            kind=row.kind,
            active=active,
            expires_at=utc(row.expires_at).timestamp(),
            last_seen_at=utc(row.last_seen_at).timestamp(),
            not_before=not_before,
            roles=roles,
            permissions=permissions,
            email_verified=user is not None and user.email_verified_at is not None,
            mfa_at=utc(row.mfa_at).timestamp() if row.mfa_at else None,
            webauthn_at=utc(row.webauthn_at).timestamp() if row.webauthn_at else None,
        )

    def state_by_id(self, session_id: str, *, fresh: bool = False) -> SessionState | None:
        """The state of a session (cached up to the configured bound unless `fresh`). Blocking:
        call it from a thread when the cache misses."""
        if self._cache_enabled and not fresh:
            cached = self._by_id.get(session_id)
            if cached is not None:
                return cached
        with self._db.read() as session:
            row = session.get(SessionRow, session_id)
            if row is None:
                return None
            state = self._load(session, row)
        if self._cache_enabled:
            self._by_id.set(session_id, state)
        return state

    def cached_state_by_id(self, session_id: str) -> SessionState | None:
        return self._by_id.get(session_id) if self._cache_enabled else None

    def state_by_secret(self, secret: str, *, fresh: bool = False) -> SessionState | None:
        digest = token_hash(secret)
        if self._cache_enabled and not fresh:
            cached = self._by_secret.get(digest)
            if cached is not None:
                return cached
        with self._db.read() as session:
            row = session.scalar(select(SessionRow).where(SessionRow.secret_hash == digest))
            if row is None or row.kind != KIND_BROWSER:
                return None
            state = self._load(session, row)
        if self._cache_enabled:
            self._by_secret.set(digest, state)
        return state

    def cached_state_by_secret(self, secret: str) -> SessionState | None:
        return self._by_secret.get(token_hash(secret)) if self._cache_enabled else None

    def touch(self, secret: str, state: SessionState) -> SessionState:
        """Record activity on a browser session (at most once a minute)."""
        now = self._clock.now()
        with self._db.write_session() as session:
            session.execute(
                update(SessionRow)
                .where(SessionRow.id == state.session_id, SessionRow.revoked_at.is_(None))
                .values(last_seen_at=now)
            )
            session.commit()
        return self.state_by_secret(secret, fresh=True) or state

    def touch_by_id(self, state: SessionState) -> SessionState:
        """Record activity on an API session (at most once a minute; staff sessions only, whose
        refresh tokens honour the staff idle timeout)."""
        now = self._clock.now()
        with self._db.write_session() as session:
            session.execute(
                update(SessionRow)
                .where(SessionRow.id == state.session_id, SessionRow.revoked_at.is_(None))
                .values(last_seen_at=now)
            )
            session.commit()
        return self.state_by_id(state.session_id, fresh=True) or state

    def is_staff(self, session: Session, user_id: str) -> bool:
        """Whether the user's roles make them staff now (what shortens their idle timeout)."""
        return is_staff(self._roles.permissions_of(session, user_id, self._clock.now()))

    def staff_idle_seconds(self) -> int:
        """A staff member's idle timeout: `staff_session_idle_minutes`, never longer than
        everyone's `session_idle_minutes`."""
        cfg = self._settings
        return min(cfg.staff_session_idle_minutes, cfg.session_idle_minutes) * 60

    # --- revoking ----------------------------------------------------------------------------
    def end_after_factor_reset(self, uow: UnitOfWork, user_id: str) -> int:
        """Support reset a user's second factors: a staff member's sessions end, with their
        refresh tokens. Each of those sessions carries the proof of a security key that no
        longer counts (`webauthn_at`), which is what makes staff permissions count; the person
        signs in again with the key they enrol next."""
        if not self.is_staff(uow.session, user_id):
            return 0
        return self.revoke_all(uow, user_id, reason=ENDED_BY_FACTOR_RESET)

    def _forget_after_commit(
        self, uow: UnitOfWork, *, session_ids: set[str], user_id: str | None = None
    ) -> None:
        def forget() -> None:
            self._by_id.delete_where(
                lambda k, v: k in session_ids or (user_id is not None and v.user_id == user_id)
            )
            self._by_secret.delete_where(
                lambda _k, v: (
                    v.session_id in session_ids or (user_id is not None and v.user_id == user_id)
                )
            )
            self._tokens.forget(
                lambda t: (
                    t.session_id in session_ids or (user_id is not None and t.user_id == user_id)
                )
            )

        uow.after_commit(forget)

    def _revoke_rows(self, uow: UnitOfWork, rows: list[SessionRow], reason: str) -> set[str]:
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
        self._forget_after_commit(uow, session_ids={session_id})
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
        self._forget_after_commit(uow, session_ids={session_id})
        return secret

    def end_replaced(self, uow: UnitOfWork, previous_secret: str) -> None:
        """A browser signed in again: end the session of the cookie it held (whoever's it was)."""
        row = uow.session.scalar(
            select(SessionRow).where(SessionRow.secret_hash == token_hash(previous_secret))
        )
        if row is None or row.revoked_at is not None:
            return
        ids = self._revoke_rows(uow, [row], "replaced-by-sign-in")
        uow.audit(
            AuditEvent(
                action="auth.session.revoked",
                subject=f"user:{row.user_id}",
                details={"session_id": row.id, "reason": "replaced-by-sign-in"},
            )
        )
        self._forget_after_commit(uow, session_ids=ids)

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

        def forget() -> None:
            self._by_id.clear()
            self._by_secret.clear()
            self._tokens.forget(lambda _token: True)

        uow.after_commit(forget)
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
        self._forget_after_commit(uow, session_ids=set(), user_id=user_id)

    def revoke(self, uow: UnitOfWork, user_id: str, session_id: str, *, reason: str) -> SessionRow:
        """End one of the user's sessions; another user's session is `NotFoundError`."""
        row = uow.session.get(SessionRow, session_id)
        if row is None or row.user_id != user_id:
            raise NotFoundError("No such session.")
        ids = self._revoke_rows(uow, [row], reason)
        uow.audit(
            AuditEvent(
                action="auth.session.revoked",
                subject=f"user:{user_id}",
                details={"session_id": session_id, "reason": reason},
            )
        )
        self._forget_after_commit(uow, session_ids=ids)
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
        ids = self._revoke_rows(uow, rows, reason)
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
        self._forget_after_commit(uow, session_ids=ids, user_id=user_id if not_before else None)
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
        ids = self._revoke_rows(uow, rows, "device-revoked")
        uow.audit(
            AuditEvent(
                action="auth.device.revoked",
                subject=f"user:{user_id}",
                details={"device_id": device_id, "sessions": len(ids)},
            )
        )
        self._forget_after_commit(uow, session_ids=ids)
        return len(ids)

    # --- listing -----------------------------------------------------------------------------
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
            _view(r) for r in rows if r.kind != KIND_BROWSER or utc(r.last_seen_at) >= idle_since
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

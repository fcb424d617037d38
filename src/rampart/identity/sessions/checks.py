"""The revocation check every authenticated request makes: reading a session's state, caching it
for `revocation_cache_seconds`, and forgetting it when a session changes.

A change made in this process empties the cached entries at once (after its commit); one made by
another process is seen here within that bound. That bound is the whole staleness story:
verified-token caching never skips this check.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rampart.access.domain import is_staff
from rampart.access.ports import RoleDirectory
from rampart.config import IdentitySettings
from rampart.identity.db import SessionRow, UserRow
from rampart.identity.domain import AccountStatus, effective_permissions, token_hash
from rampart.identity.sessions.model import KIND_BROWSER, SessionState
from rampart.identity.tokens import AccessTokens
from rampart.kernel.clock import Clock, utc
from rampart.platform.cache import TTLCache
from rampart.platform.db import Database
from rampart.platform.uow import UnitOfWork


class SessionCache:
    """Session states by id and by cookie digest, and the forgetting that a change calls for
    (of these and of the verified access tokens of the sessions concerned)."""

    def __init__(self, clock: Clock, settings: IdentitySettings, tokens: AccessTokens) -> None:
        ttl = max(settings.revocation_cache_seconds, 1e-6)
        self.by_id: TTLCache[str, SessionState] = TTLCache(
            100_000, clock=clock.monotonic, default_ttl=ttl
        )
        self.by_secret: TTLCache[str, SessionState] = TTLCache(
            100_000, clock=clock.monotonic, default_ttl=ttl
        )
        self.enabled = settings.revocation_cache_seconds > 0
        self._tokens = tokens

    def forget_after_commit(
        self, uow: UnitOfWork, *, session_ids: set[str], user_id: str | None = None
    ) -> None:
        """After this commit, drop the given sessions (and, with `user_id`, all the user's)."""

        def forget() -> None:
            self.by_id.delete_where(
                lambda k, v: k in session_ids or (user_id is not None and v.user_id == user_id)
            )
            self.by_secret.delete_where(
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

    def forget_everything_after_commit(self, uow: UnitOfWork) -> None:
        def forget() -> None:
            self.by_id.clear()
            self.by_secret.clear()
            self._tokens.forget(lambda _token: True)

        uow.after_commit(forget)


class SessionChecks:
    """Reading a session's state for a request (cached), and recording the request's activity."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: IdentitySettings,
        roles: RoleDirectory,
        cache: SessionCache,
    ) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._roles = roles
        self._cache = cache

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
        cache = self._cache
        if cache.enabled and not fresh:
            cached = cache.by_id.get(session_id)
            if cached is not None:
                return cached
        with self._db.read() as session:
            row = session.get(SessionRow, session_id)
            if row is None:
                return None
            state = self._load(session, row)
        if cache.enabled:
            cache.by_id.set(session_id, state)
        return state

    def cached_state_by_id(self, session_id: str) -> SessionState | None:
        return self._cache.by_id.get(session_id) if self._cache.enabled else None

    def state_by_secret(self, secret: str, *, fresh: bool = False) -> SessionState | None:
        cache = self._cache
        digest = token_hash(secret)
        if cache.enabled and not fresh:
            cached = cache.by_secret.get(digest)
            if cached is not None:
                return cached
        with self._db.read() as session:
            row = session.scalar(select(SessionRow).where(SessionRow.secret_hash == digest))
            if row is None or row.kind != KIND_BROWSER:
                return None
            state = self._load(session, row)
        if cache.enabled:
            cache.by_secret.set(digest, state)
        return state

    def cached_state_by_secret(self, secret: str) -> SessionState | None:
        if not self._cache.enabled:
            return None
        return self._cache.by_secret.get(token_hash(secret))

    def _write_last_seen(self, session_id: str) -> None:
        now = self._clock.now()
        with self._db.write_session() as session:
            session.execute(
                update(SessionRow)
                .where(SessionRow.id == session_id, SessionRow.revoked_at.is_(None))
                .values(last_seen_at=now)
            )
            session.commit()

    def touch(self, secret: str, state: SessionState) -> SessionState:
        """Record activity on a browser session (at most once a minute)."""
        self._write_last_seen(state.session_id)
        return self.state_by_secret(secret, fresh=True) or state

    def touch_by_id(self, state: SessionState) -> SessionState:
        """Record activity on an API session (at most once a minute; staff sessions only, whose
        refresh tokens honour the staff idle timeout)."""
        self._write_last_seen(state.session_id)
        return self.state_by_id(state.session_id, fresh=True) or state

    def is_staff(self, session: Session, user_id: str) -> bool:
        """Whether the user's roles make them staff now (what shortens their idle timeout)."""
        return is_staff(self._roles.permissions_of(session, user_id, self._clock.now()))

    def staff_idle_seconds(self) -> int:
        """A staff member's idle timeout: `staff_session_idle_minutes`, never longer than
        everyone's `session_idle_minutes`."""
        cfg = self._settings
        return min(cfg.staff_session_idle_minutes, cfg.session_idle_minutes) * 60

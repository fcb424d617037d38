"""Authenticators for `rampart.access.api.authenticate`: bearer JWTs and browser sessions.

Bearer: `Authorization: Bearer <JWT>`. The token is verified (cached per token until it expires)
and then its session's revocation state is checked on every request (cached per session for at
most `revocation_cache_seconds`, emptied at once by revocations in this process). A cache hit on
both costs a few microseconds; see docs/performance.md.

Session: the `__Host-rampart_session` cookie (HttpOnly, Secure, SameSite=Strict, Path=/). Every
state-changing request must also carry the session's CSRF token (`X-CSRF-Token` header or a
`csrf_token` form field). Sessions end after `session_idle_minutes` without a request (a staff
member's after `staff_session_idle_minutes`, if shorter) and after `session_absolute_hours` in any
case.

Both build the principal with `rampart.access.domain.person_principal`, which honours staff
permissions only for a session that proved a WebAuthn factor.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from rampart.access.domain import Principal, is_staff, person_principal
from rampart.config import IdentitySettings, Settings
from rampart.identity.domain import (
    CsrfError,
    InvalidSessionError,
    InvalidTokenError,
    TokenRevokedError,
)
from rampart.identity.sessions import TOUCH_SECONDS, SessionState, csrf_token_for
from rampart.identity.sessions.checks import SessionChecks
from rampart.kernel.clock import Clock
from rampart.platform.uow import UnitOfWork

if TYPE_CHECKING:
    from rampart.identity.service import IdentityService

SESSION_COOKIE = "__Host-rampart_session"
DEVICE_COOKIE = "__Host-rampart_device"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_COOKIE_CHARS = 128
#: Sent with every logout: the browser drops what it cached and stored for this origin (pages
#: with account data, storage). Not "cookies": that would also drop the device cookie, and each
#: later sign-in would be announced as a new device; the session cookie is deleted by name.
CLEAR_SITE_DATA = '"cache", "storage"'


def previous_session(conn: HTTPConnection) -> str | None:
    """The session cookie a browser presents while signing in again (its session is ended)."""
    secret = conn.cookies.get(SESSION_COOKIE)
    return secret if secret and len(secret) <= MAX_COOKIE_CHARS else None


def set_session_cookie(response: Response, settings: IdentitySettings, secret: str) -> None:
    # `__Host-`: Secure, Path=/, no Domain, so no sibling subdomain can set or read it.
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=settings.session_absolute_hours * 3600,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def end_browser_session(response: Response) -> None:
    """What a logout response carries: the session cookie deleted, the site's data cleared."""
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict")
    response.headers["Clear-Site-Data"] = CLEAR_SITE_DATA


def principal_of(state: SessionState, method: str, issued_at: int | None = None) -> Principal:
    return person_principal(
        state.user_id,
        roles=state.roles,
        permissions=state.permissions,
        method=method,
        credential_id=state.session_id,
        mfa_at=state.mfa_at,
        webauthn_at=state.webauthn_at,
        issued_at=issued_at,
    )


async def _session_revoked(
    sessions: SessionChecks, principal: Principal, method: str
) -> bool | None:
    """The revocation half of the per-request check, for a principal accepted earlier (a
    stream's): its session ended, its user locked or closed, or its token before "not before".
    Cached like the per-request check, so asking every second costs a dictionary lookup."""
    if principal.method != method or principal.credential_id is None:
        return None
    state = sessions.cached_state_by_id(principal.credential_id)
    if state is None:
        state = await run_in_threadpool(sessions.state_by_id, principal.credential_id)
    return (
        state is None
        or not state.active
        or state.user_id != principal.user_id
        or (principal.issued_at is not None and principal.issued_at < state.not_before)
    )


class BearerAuthenticator:
    def __init__(self, identity: IdentityService, clock: Clock) -> None:
        self._tokens = identity.tokens
        self._sessions = identity.sessions.checks
        self._clock = clock

    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        header = conn.headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = token.strip()
        if not token:
            raise InvalidTokenError
        return await self.check(token)

    async def check(self, token: str) -> Principal:
        """The whole bearer check: verify (cached), then the revocation state (cached)."""
        verified = self._tokens.verify(token)
        state = self._sessions.cached_state_by_id(verified.session_id)
        if state is None:
            state = await run_in_threadpool(self._sessions.state_by_id, verified.session_id)
        now = self._clock.time_ns() / 1e9
        if (
            state is None
            or not state.active
            or state.user_id != verified.user_id
            or state.expires_at <= now
            or verified.issued_at < state.not_before
        ):
            raise TokenRevokedError
        if is_staff(state.permissions) and now - state.last_seen_at >= TOUCH_SECONDS:
            # A staff API session's activity is recorded (at most once a minute), so that the
            # staff idle timeout its refresh tokens honour measures time without requests.
            state = await run_in_threadpool(self._sessions.touch_by_id, state)
        return principal_of(state, "bearer", verified.issued_at)

    async def revoked(self, principal: Principal) -> bool | None:
        return await _session_revoked(self._sessions, principal, "bearer")


class SessionAuthenticator:
    def __init__(
        self,
        identity: IdentityService,
        clock: Clock,
        settings: Settings,
        new_uow: Callable[[], UnitOfWork],
    ) -> None:
        self._identity = identity
        self._sessions = identity.sessions.checks
        self._ending = identity.sessions.ending
        self._clock = clock
        self._new_uow = new_uow
        self._idle = settings.identity.session_idle_minutes * 60
        self._staff_idle = min(settings.identity.staff_session_idle_minutes * 60, self._idle)
        public = urlsplit(settings.effective_public_url)
        self._public_origin = f"{public.scheme}://{public.netloc}"

    async def authenticate(self, conn: HTTPConnection) -> Principal | None:
        secret = conn.cookies.get(SESSION_COOKIE)
        if not secret:
            return None
        if len(secret) > MAX_COOKIE_CHARS:
            raise InvalidSessionError
        state = self._sessions.cached_state_by_secret(secret)
        if state is None:
            state = await run_in_threadpool(self._sessions.state_by_secret, secret)
        now = self._clock.time_ns() / 1e9
        if state is None or not state.active or state.expires_at <= now:
            raise InvalidSessionError
        # Staff by their roles, whether or not this sign-in carries WebAuthn: a staff console
        # left open is as unattended either way.
        idle = self._staff_idle if is_staff(state.permissions) else self._idle
        if now - state.last_seen_at > idle:
            # The cache may be behind another process's touch; look once more before ending it.
            state = await run_in_threadpool(self._sessions.state_by_secret, secret, fresh=True)
            if state is None or not state.active:
                raise InvalidSessionError
            if now - state.last_seen_at > idle:
                await self._end(state)
                raise InvalidSessionError("The session ended after a period of inactivity.")
        await self._check_csrf(conn, secret)
        if now - state.last_seen_at >= TOUCH_SECONDS:
            state = await run_in_threadpool(self._sessions.touch, secret, state)
        return principal_of(state, "session")

    async def revoked(self, principal: Principal) -> bool | None:
        return await _session_revoked(self._sessions, principal, "session")

    async def _end(self, state: SessionState) -> None:
        await run_in_threadpool(self._revoke_idle, state)

    def _revoke_idle(self, state: SessionState) -> None:
        with self._new_uow() as uow:
            self._ending.revoke(uow, state.user_id, state.session_id, reason="idle")
            uow.commit()

    async def _check_csrf(self, conn: HTTPConnection, secret: str) -> None:
        if conn.scope["type"] == "websocket":
            # No custom headers on a websocket handshake: check that it comes from our origin.
            origin = conn.headers.get("origin")
            if origin is not None and origin != self._public_origin:
                host = conn.headers.get("host", "")
                if urlsplit(origin).netloc != host:
                    raise CsrfError
            return
        if conn.scope.get("method", "GET") in SAFE_METHODS:
            return
        presented = conn.headers.get(CSRF_HEADER)
        if presented is None and isinstance(conn, Request):
            content_type = conn.headers.get("content-type", "")
            if content_type.startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")
            ):
                form = await conn.form()
                value = form.get(CSRF_FIELD)
                presented = value if isinstance(value, str) else None
        expected = csrf_token_for(secret)
        if not presented or not hmac.compare_digest(presented.encode(), expected.encode()):
            raise CsrfError

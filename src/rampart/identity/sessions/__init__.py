"""Sessions and devices: creating, listing and ending them, and the revocation check every
authenticated request makes.

The store is cut into parts that change for different reasons: `checks` (reading a session's
state for a request, its cache, recording activity), `creation` (signing in, the device, step-up
stamps and cookie rotation), `cap` (the per-account limit and making room at sign-in), `ending`
(one session, a user's, a device's, everyone's) and `listing` (what a user sees). `SessionStore`
is the one object the rest of identity holds; its methods are the parts' own.

The revocation check keeps a session's state for `revocation_cache_seconds`. A change made in
this process empties the cached entries at once (after its commit); one made by another process
is seen here within that bound. That bound is the whole staleness story: verified-token caching
never skips this check.
"""

from __future__ import annotations

from rampart.access.ports import RoleDirectory
from rampart.config import IdentitySettings
from rampart.identity.sessions.cap import SessionCap
from rampart.identity.sessions.checks import SessionCache, SessionChecks
from rampart.identity.sessions.creation import SessionCreation
from rampart.identity.sessions.ending import SessionEnding
from rampart.identity.sessions.listing import SessionListing
from rampart.identity.sessions.model import (
    ENDED_AT_SESSION_LIMIT,
    ENDED_BY_FACTOR_RESET,
    ENDED_BY_OPERATOR,
    KIND_API,
    KIND_BROWSER,
    TOUCH_SECONDS,
    ClientInfo,
    DeviceView,
    SessionState,
    SessionView,
    csrf_token_for,
)
from rampart.identity.tokens import AccessTokens
from rampart.kernel.clock import Clock
from rampart.platform.db import Database

__all__ = [
    "ENDED_AT_SESSION_LIMIT",
    "ENDED_BY_FACTOR_RESET",
    "ENDED_BY_OPERATOR",
    "KIND_API",
    "KIND_BROWSER",
    "TOUCH_SECONDS",
    "ClientInfo",
    "DeviceView",
    "SessionState",
    "SessionStore",
    "SessionView",
    "csrf_token_for",
]


class SessionStore:
    """The session parts, wired to one cache, and their methods by the store's name."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: IdentitySettings,
        roles: RoleDirectory,
        tokens: AccessTokens,
    ) -> None:
        cache = SessionCache(clock, settings, tokens)
        self.checks = SessionChecks(db, clock, settings, roles, cache)
        self.creation = SessionCreation(clock, settings, cache)
        self.ending = SessionEnding(clock, self.checks, cache)
        self.cap = SessionCap(clock, settings, self.checks, self.ending, cache)
        self.listing = SessionListing(clock, settings)
        # The per-request check.
        self.state_by_id = self.checks.state_by_id
        self.cached_state_by_id = self.checks.cached_state_by_id
        self.state_by_secret = self.checks.state_by_secret
        self.cached_state_by_secret = self.checks.cached_state_by_secret
        self.touch = self.checks.touch
        self.touch_by_id = self.checks.touch_by_id
        self.is_staff = self.checks.is_staff
        self.staff_idle_seconds = self.checks.staff_idle_seconds
        # Signing in and stepping up.
        self.record_device = self.creation.record_device
        self.create = self.creation.create
        self.record_second_factor = self.creation.record_second_factor
        self.rotate_secret = self.creation.rotate_secret
        # The per-account cap.
        self.session_limit = self.cap.session_limit
        self.make_room = self.cap.make_room
        # Ending.
        self.end_after_factor_reset = self.ending.end_after_factor_reset
        self.end_replaced = self.ending.end_replaced
        self.revoke_everyone = self.ending.revoke_everyone
        self.end_user_sessions = self.ending.end_user_sessions
        self.forget_user = self.ending.forget_user
        self.revoke = self.ending.revoke
        self.revoke_all = self.ending.revoke_all
        self.revoke_device = self.ending.revoke_device
        # Listing.
        self.list_sessions = self.listing.list_sessions
        self.list_devices = self.listing.list_devices

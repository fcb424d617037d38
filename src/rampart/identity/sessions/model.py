"""What the session parts share: the kinds and revoke reasons, the views they return, the
client a sign-in comes from, and the anti-forgery token of a browser session."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from rampart.identity.db import SessionRow
from rampart.kernel.clock import utc

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


def session_view(row: SessionRow) -> SessionView:
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

"""Identity rules as pure values: emails, the password policy, login throttling, the login
state machine, opaque tokens and the errors users see. No I/O here.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from rampart.kernel.errors import (
    ConflictError,
    ForbiddenError,
    RateLimitedError,
    UnauthorizedError,
    UnavailableError,
    ValidationError,
)

# --- errors ---------------------------------------------------------------------------------


class InvalidCredentialsError(UnauthorizedError):
    # One error for "no such account" and "wrong password": the difference is not revealed.
    code = "invalid-credentials"
    title = "The email or password is not correct"


class LoginThrottledError(RateLimitedError):
    code = "login-throttled"
    title = "Too many failed sign-in attempts; wait before trying again"


class WeakPasswordError(ValidationError):
    code = "weak-password"
    title = "Choose a different password"


class InvalidEmailError(ValidationError):
    code = "invalid-email"
    title = "That is not a usable email address"


class InvalidLinkError(ValidationError):
    # Unknown, used and expired links look alike: nothing is learnt by probing them.
    code = "invalid-link"
    title = "The link is not valid or has expired"


class InvalidTokenError(UnauthorizedError):
    code = "invalid-token"
    title = "The access token is not valid"
    security_event = "invalid-token"


class TokenRevokedError(UnauthorizedError):
    code = "token-revoked"
    title = "The access token has been revoked"


class InvalidRefreshTokenError(UnauthorizedError):
    code = "invalid-refresh-token"
    title = "The refresh token is not valid"


class RefreshTokenReusedError(UnauthorizedError):
    code = "refresh-token-reused"
    title = "The refresh token was already used; the session has been ended"


class InvalidSessionError(UnauthorizedError):
    code = "invalid-session"
    title = "The session has ended; sign in again"


class CsrfError(ForbiddenError):
    code = "csrf-failed"
    title = "The request is missing its anti-forgery token"
    security_event = "csrf-failed"


class PendingLoginError(UnauthorizedError):
    code = "invalid-pending-login"
    title = "The sign-in has expired; start again"


class PasswordChangeRequiredError(ForbiddenError):
    """The password was set by an operator: replace it first (`POST
    /v1/auth/password/change-required`, or the sign-in page's form), then sign in."""

    code = "password-change-required"
    title = "Choose a new password before signing in"


class PasswordChangeNotRequiredError(ForbiddenError):
    code = "password-change-not-required"
    title = "This account changes its password from its security settings"


class EmailInUseError(ConflictError):
    code = "email-in-use"
    title = "That email address cannot be used"


class HashingBusyError(UnavailableError):
    code = "busy"
    title = "Too many sign-ins at once; try again shortly"


# --- emails ---------------------------------------------------------------------------------

MAX_EMAIL = 254
_EMAIL = re.compile(
    r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


def normalise_email(raw: str) -> str:
    """The canonical form of an address: NFKC, trimmed, lower-cased; refused when malformed.

    Lower-casing the local part is not RFC 5321 but is what every mailbox provider does, and it
    stops `Alice@x` and `alice@x` from becoming two accounts.
    """
    email = unicodedata.normalize("NFKC", raw or "").strip().lower()
    if len(email) > MAX_EMAIL or not _EMAIL.match(email):
        raise InvalidEmailError("Give a valid email address.")
    return email


# --- passwords ------------------------------------------------------------------------------


def normalise_password(password: str) -> str:
    # NFKC so that the same password typed on two keyboards (composed vs decomposed accents,
    # full-width digits) is the same password (SP 800-63B 5.1.1.2).
    return unicodedata.normalize("NFKC", password)


@dataclass(frozen=True)
class PasswordPolicy:
    """NIST SP 800-63B memorised-secret rules: length and a blocklist, no composition rules."""

    min_length: int
    max_length: int
    blocklist: frozenset[str]
    #: Context-specific words refused anywhere in a password, lower-case (the product's name).
    context_words: frozenset[str] = frozenset()

    def problems(self, password: str, email: str | None = None) -> list[str]:
        """Every reason `password` is refused (empty when it is acceptable)."""
        normal = normalise_password(password)
        found: list[str] = []
        if len(normal) < self.min_length:
            found.append(f"Use at least {self.min_length} characters.")
        if len(normal) > self.max_length:
            found.append(f"Use at most {self.max_length} characters.")
        lowered = normal.lower()
        if lowered in self.blocklist or lowered.strip() in self.blocklist:
            found.append("This password is one of the most common ones; choose another.")
        if email and any(part in lowered for part in email_parts(email)):
            found.append("Do not use your email address, or a part of it, in your password.")
        if any(word in lowered for word in self.context_words):
            found.append("Do not use the name of this service in your password.")
        return found

    def check(self, password: str, email: str | None = None) -> str:
        """The normalised password, or `WeakPasswordError` listing every problem."""
        found = self.problems(password, email)
        if found:
            raise WeakPasswordError(" ".join(found), problems=found)
        return normalise_password(password)


#: Pieces of an address shorter than this are too common to refuse inside a password.
_MIN_EMAIL_PART = 4


def email_parts(email: str) -> set[str]:
    """The parts of an address a password must not contain, lower-case: the whole local part
    (three characters or more, as before), its pieces split at `.`, `_`, `+` and `-`, and the
    domain's labels but its last (`anna.lee@acme-corp.example.com` gives `anna.lee`, `anna`,
    `acme-corp`, `acme`, `corp`, `example`), each of four characters or more."""
    local, _, domain = email.lower().partition("@")
    parts = {local} if len(local) >= 3 else set()
    labels = domain.split(".")[:-1]
    for chunk in [local, *labels]:
        parts.add(chunk)
        parts.update(re.split(r"[._+-]+", chunk))
    return {p for p in parts if len(p) >= _MIN_EMAIL_PART or (p == local and len(p) >= 3)}


def load_blocklist(lines: Iterable[str]) -> frozenset[str]:
    return frozenset(
        normalise_password(line.rstrip("\r\n")).lower() for line in lines if line.strip()
    )


# --- opaque tokens ----------------------------------------------------------------------------

TOKEN_BYTES = 32


def new_token() -> str:
    """256 random bits, URL-safe: a session id, a refresh token, a link token."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What is stored of an opaque token. A plain SHA-256 suffices: the token has 256 bits of
    entropy, so there is nothing to brute-force, and lookup by hash stays an index hit."""
    return hashlib.sha256(token.encode()).hexdigest()


_DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def clean_device_id(raw: str | None) -> str | None:
    """A client-supplied device id when well-formed; anything else is ignored, not trusted."""
    if raw and _DEVICE_ID.match(raw):
        return raw
    return None


# --- throttling -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int
    lock_after: int
    base_seconds: float
    max_seconds: float
    lock_seconds: float
    window_seconds: float


@dataclass(frozen=True)
class ThrottleState:
    failures: int = 0
    last_failure_at: datetime | None = None
    locked_until: datetime | None = None


def current_state(state: ThrottleState, now: datetime, policy: ThrottlePolicy) -> ThrottleState:
    """The state as of `now`: an ended lock and failures older than the window are forgotten."""
    if state.locked_until is not None and state.locked_until <= now:
        return ThrottleState()
    if (
        state.last_failure_at is not None
        and (now - state.last_failure_at).total_seconds() > policy.window_seconds
    ):
        return ThrottleState(locked_until=state.locked_until)
    return state


def delay_after(failures: int, policy: ThrottlePolicy) -> float:
    """Seconds an attempt must wait after `failures` failures: 0, then doubling, capped."""
    extra = failures - policy.free_failures
    if extra < 0:
        return 0.0
    return float(min(policy.max_seconds, policy.base_seconds * (2 ** min(extra, 30))))


def wait_seconds(state: ThrottleState, now: datetime, policy: ThrottlePolicy) -> float:
    """How long the next attempt must wait (0 when it may proceed)."""
    state = current_state(state, now, policy)
    if state.locked_until is not None and state.locked_until > now:
        return (state.locked_until - now).total_seconds()
    if state.last_failure_at is None:
        return 0.0
    ready = state.last_failure_at + timedelta(seconds=delay_after(state.failures, policy))
    return max(0.0, (ready - now).total_seconds())


def after_failure(state: ThrottleState, now: datetime, policy: ThrottlePolicy) -> ThrottleState:
    state = current_state(state, now, policy)
    failures = state.failures + 1
    locked_until = state.locked_until
    if failures >= policy.lock_after:
        locked_until = now + timedelta(seconds=policy.lock_seconds)
    return replace(state, failures=failures, last_failure_at=now, locked_until=locked_until)


# --- the login state machine ----------------------------------------------------------------


class LoginStep(StrEnum):
    """Where a sign-in stands. Tokens and sessions are issued only from `COMPLETE`."""

    PASSWORD = "password"  # noqa: S105 - nothing proven yet
    SECOND_FACTOR = "second_factor"  # password proven; a second factor is owed
    COMPLETE = "complete"  # every required factor proven


_TRANSITIONS: dict[LoginStep, frozenset[LoginStep]] = {
    LoginStep.PASSWORD: frozenset({LoginStep.SECOND_FACTOR, LoginStep.COMPLETE}),
    LoginStep.SECOND_FACTOR: frozenset({LoginStep.COMPLETE}),
    LoginStep.COMPLETE: frozenset(),
}


def next_login_step(current: LoginStep, *, factors_required: bool) -> LoginStep:
    """The step after `current` succeeds. Skipping the second factor is impossible by
    construction: from PASSWORD with factors required the only way on is SECOND_FACTOR."""
    target = (
        LoginStep.SECOND_FACTOR
        if current is LoginStep.PASSWORD and factors_required
        else LoginStep.COMPLETE
    )
    if target not in _TRANSITIONS[current]:
        raise ValueError(f"no transition from {current} to {target}")
    return target


#: What an account whose email is not yet verified may do: look, but neither trade nor move
#: money nor mint credentials for bots.
UNVERIFIED_PERMISSIONS = frozenset({"account:view", "market:data"})


def effective_permissions(granted: frozenset[str], email_verified: bool) -> frozenset[str]:
    return granted if email_verified else granted & UNVERIFIED_PERMISSIONS


class AccountStatus(StrEnum):
    ACTIVE = "active"
    #: Locked by an operator or by the user ("this wasn't me"): no sign-in, every credential dead.
    LOCKED = "locked"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class User:
    """An account as other domains see it."""

    id: str
    email: str
    email_verified: bool
    status: str
    created_at: datetime

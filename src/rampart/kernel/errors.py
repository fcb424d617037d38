"""Domain errors.

Every error a user can see is a `RampartError` subclass with a stable `code`. The web layer maps
codes to RFC 9457 problem types and HTTP statuses in exactly one place
(`rampart.platform.http.problems`); nothing else knows about HTTP.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RampartError(Exception):
    #: Stable, documented identifier: clients branch on it. Never change a published code.
    code: str = "internal"
    title: str = "Internal error"
    #: Set on refusals that show someone working against a control (a forged request, too many
    #: attempts, a token that is not ours): the web layer logs each as a security event of this
    #: kind (`rampart.platform.security_events`).
    security_event: ClassVar[str | None] = None

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


class ValidationError(RampartError):
    code = "validation"
    title = "The request is not valid"


class NotFoundError(RampartError):
    # Also what another user's object looks like: existence is not revealed.
    code = "not-found"
    title = "Not found"


class ConflictError(RampartError):
    code = "conflict"
    title = "Conflict with the current state"


class UnauthorizedError(RampartError):
    code = "unauthorized"
    title = "Authentication required"


class ForbiddenError(RampartError):
    code = "forbidden"
    title = "Not allowed"


class RateLimitedError(RampartError):
    code = "rate-limited"
    title = "Too many requests"
    security_event = "rate-limited"

    def __init__(self, detail: str | None = None, *, retry_after: float = 1.0, **extra: Any):
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class UnavailableError(RampartError):
    code = "unavailable"
    title = "Temporarily unavailable"


class AuditUnavailableError(UnavailableError):
    """The audit entry could not be written, so the action it records must not proceed."""

    code = "audit-unavailable"
    title = "The audit log cannot record this right now"

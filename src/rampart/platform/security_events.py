"""Security events in the application log: the refusals that show someone working a control.

The audit log records what happens to an account (sign-ins, second-factor results, every access
decision, refresh-token reuse), in the same transaction as the change. Some refusals come before
any account is known, or protect a control itself: a request without its anti-forgery token, a
rate limiter saying no, a bearer token that is forged, expired or not ours, input that fails
validation. They change nothing, so they have no transaction to join, and at the rate an attacker
can send them they would flood the audit tree; but an operator must see them (ASVS 16.3.3). Each
becomes one line on the `rampart.security` logger with `security_event=<kind>`, the request id,
the client address, the pseudonymous actor and the path: never the submitted value, the token or
the cookie. The log platform alerts on `security_event` (docs/security/logging.md).
"""

from __future__ import annotations

from typing import Final

from rampart.kernel.context import current_context
from rampart.platform.logging import get_logger

log = get_logger("rampart.security")

CSRF_FAILED: Final = "csrf-failed"
RATE_LIMITED: Final = "rate-limited"
INVALID_TOKEN: Final = "invalid-token"  # noqa: S105 - an event kind, not a secret
INPUT_REFUSED: Final = "input-refused"

#: Warning for what only an attacker or a broken client does; info for what an honest client
#: also meets now and then (an expired token, a mistyped field), which matters in volume.
LEVELS: Final[dict[str, str]] = {
    CSRF_FAILED: "warning",
    RATE_LIMITED: "warning",
    INVALID_TOKEN: "info",
    INPUT_REFUSED: "info",
}


def log_security_event(kind: str, *, path: str, status: int, **fields: object) -> None:
    """Log one refusal as a security event of `kind` (one of `LEVELS`).

    `fields` must not hold submitted values; the redaction pass would hide secrets among them,
    but a refusal's log line has no need of them in the first place.
    """
    ctx = current_context()
    emit = getattr(log, LEVELS.get(kind, "warning"))
    emit(
        "security event",
        security_event=kind,
        path=path,
        status=status,
        client_ip=ctx.client_ip,
        actor=ctx.actor,
        **fields,
    )

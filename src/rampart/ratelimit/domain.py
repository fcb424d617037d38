"""Rate limiting as pure arithmetic: GCRA, limit specs, and the RateLimit-* header values.

GCRA (the generic cell rate algorithm) keeps one number per subject, the theoretical arrival time
(TAT) of the next request if requests came exactly at the permitted rate. A request is allowed when
it does not arrive earlier than TAT minus the burst allowance; it then pushes TAT on by one
emission interval. One stored float per subject, one atomic read-modify-write per request, exact
(no window edges to game), and it yields Retry-After and the remaining allowance directly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rampart.kernel.errors import RateLimitedError, UnavailableError

PERIODS = {
    "second": 1.0,
    "minute": 60.0,
    "hour": 3600.0,
    "day": 86400.0,
}
_SPEC = re.compile(
    r"^\s*(?P<count>\d+)\s*/\s*(?:(?P<n>\d+)\s*)?(?P<unit>second|minute|hour|day)s?"
    r"(?:\s+burst\s+(?P<burst>\d+))?\s*$"
)
_NAME = re.compile(r"^(ip|user|key|route)\.[a-z][a-z0-9-]{1,40}$")
SCOPES = ("ip", "user", "key", "route")


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """`count` requests per `period` seconds, up to `burst` at once, for one named limiter.

    The name is `<scope>.<action>` (`ip.login`, `user.mfa`, `key.orders`): the scope says whose
    allowance it is (client IP, user, API key, or the route class as a whole).
    """

    name: str
    count: int
    period: float
    burst: int
    #: When the backend cannot be reached: refuse (True) or allow and log (False).
    fail_closed: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"limiter name must be <scope>.<action>: {self.name!r}")
        if self.count < 1 or self.period <= 0 or self.burst < 1:
            raise ValueError(f"{self.name}: count, period and burst must be positive")

    @property
    def scope(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def emission_interval(self) -> float:
        return self.period / self.count

    def tightened(self, factor: int) -> LimitSpec:
        """The same limiter at 1/`factor` of its rate and burst (adaptive mode)."""
        if factor <= 1:
            return self
        return LimitSpec(
            name=self.name,
            count=max(1, self.count // factor),
            period=self.period,
            burst=max(1, self.burst // factor),
            fail_closed=self.fail_closed,
        )


def parse_spec(name: str, text: str, *, fail_closed: bool) -> LimitSpec:
    """`"10/minute"`, `"100/5 minutes burst 20"` -> a LimitSpec (burst defaults to count)."""
    match = _SPEC.match(text.lower())
    if not match:
        raise ValueError(f"{name}: not a limit like '10/minute burst 5': {text!r}")
    count = int(match["count"])
    period = PERIODS[match["unit"]] * int(match["n"] or 1)
    burst = int(match["burst"]) if match["burst"] else count
    return LimitSpec(name=name, count=count, period=period, burst=burst, fail_closed=fail_closed)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    #: Seconds until the allowance is full again.
    reset_after: float
    #: Seconds until the next request would be allowed (0 when allowed).
    retry_after: float
    name: str = ""
    period: float = 0.0

    def headers(self) -> dict[str, str]:
        """RateLimit-* (draft-ietf-httpapi-ratelimit-headers), and Retry-After when refused."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(max(0, math.ceil(self.reset_after))),
            "RateLimit-Policy": f'"{self.name}";q={self.limit};w={max(1, math.ceil(self.period))}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


def gcra(
    tat: float | None, now: float, spec: LimitSpec, cost: int = 1
) -> tuple[Decision, float | None]:
    """Decide one request; return the decision and the new TAT to store (None: store nothing).

    The Redis backend runs the same arithmetic in Lua; this is the reference both are tested
    against.
    """
    interval = spec.emission_interval
    burst_offset = interval * spec.burst
    base = now if tat is None or tat < now else tat
    new_tat = base + interval * cost
    allow_at = new_tat - burst_offset
    if now < allow_at:
        remaining = max(0, math.floor((burst_offset - (base - now)) / interval))
        return (
            Decision(
                allowed=False,
                limit=spec.burst,
                remaining=remaining,
                reset_after=base - now,
                retry_after=allow_at - now,
                name=spec.name,
                period=spec.period,
            ),
            None,
        )
    remaining = max(0, math.floor((burst_offset - (new_tat - now)) / interval + 1e-9))
    return (
        Decision(
            allowed=True,
            limit=spec.burst,
            remaining=remaining,
            reset_after=new_tat - now,
            retry_after=0.0,
            name=spec.name,
            period=spec.period,
        ),
        new_tat,
    )


def gcra_refund(tat: float | None, now: float, spec: LimitSpec, cost: int = 1) -> float | None:
    """The TAT after giving back `cost` units a request took (None: nothing left to store).

    For limiters that count failures: the unit is taken before the attempt (so concurrent
    attempts cannot all pass a check that has not yet counted them) and given back when it
    succeeds. Never past a full allowance: the TAT does not fall below `now`.
    """
    if tat is None or tat <= now:
        return None
    new_tat = tat - spec.emission_interval * cost
    return new_tat if new_tat > now else None


class RateLimitExceededError(RateLimitedError):
    """429; carries the RateLimit-* and Retry-After headers of the refusing limiter."""

    code = "rate-limited"

    def __init__(self, decision: Decision) -> None:
        wait = max(1, math.ceil(decision.retry_after))
        super().__init__(
            f"Too many requests ({decision.name}); retry in {wait} s.",
            retry_after=decision.retry_after,
            limiter=decision.name,
        )
        self.headers = decision.headers()


class RateLimiterUnavailableError(UnavailableError):
    """503: a fail-closed limiter could not reach its backend, so the action is refused."""

    code = "rate-limiter-unavailable"
    title = "This action is paused: its safety limits cannot be checked"

    def __init__(self, name: str) -> None:
        super().__init__("Try again shortly.", limiter=name, retry_after=5)
        self.headers = {"Retry-After": "5"}


#: The built-in limiters. Those guarding credentials, MFA, money and orders fail closed.
DEFAULT_LIMITS: dict[str, LimitSpec] = {
    spec.name: spec
    for spec in (
        parse_spec("ip.login", "20/minute burst 10", fail_closed=True),
        parse_spec("user.login", "10/minute burst 5", fail_closed=True),
        parse_spec("ip.mfa", "30/5 minutes burst 10", fail_closed=True),
        # Wrong second factors (codes, keys) at sign-in and step-up, per person and per IP: a
        # factor that passes gives its unit back (`RateLimits.attempt`), so only guesses count.
        parse_spec("user.mfa", "10/5 minutes burst 5", fail_closed=True),
        # Failed enrolments (a first TOTP or channel code, a new key's attestation): their own
        # allowance, so guesses at someone's sign-in never stop the signed-in owner adding a key.
        parse_spec("user.mfa-enrol", "10/5 minutes burst 5", fail_closed=True),
        parse_spec("ip.signup", "10/hour burst 5", fail_closed=False),
        parse_spec("ip.password-reset", "10/hour burst 5", fail_closed=False),
        parse_spec("user.withdrawals", "10/hour burst 3", fail_closed=True),
        parse_spec("user.orders", "50/second burst 100", fail_closed=True),
        parse_spec("key.orders", "50/second burst 100", fail_closed=True),
        parse_spec("user.apikeys", "20/hour burst 5", fail_closed=False),
        parse_spec("user.reads", "20/second burst 40", fail_closed=False),
        parse_spec("key.reads", "20/second burst 40", fail_closed=False),
        parse_spec("ip.reads", "50/second burst 100", fail_closed=False),
        parse_spec("ip.auth", "30/minute burst 30", fail_closed=False),
    )
}


def fail_closed_by_default(name: str) -> bool:
    action = name.split(".", 1)[-1]
    return action in {"login", "mfa", "mfa-enrol", "withdrawals", "orders"}

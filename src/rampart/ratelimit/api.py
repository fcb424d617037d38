"""Apply named limiters to routes: `Depends(rate_limit("ip.login"))`.

Scopes take their subject from the request: `ip` the client IP the edge middleware resolved,
`user` the principal's user id, `key` the API key id (skipped when the request is not signed
with a key), `route` one shared allowance for everyone. User and key scopes need the principal,
so pass the route's access dependency as `after=` (FastAPI runs it once even if the route uses it
too):

    place = requires(Permission.ORDER_PLACE)

    @router.post("/orders", dependencies=[Depends(rate_limit("user.orders", "key.orders",
                                                             after=place))])
    def place_order(principal: Principal = Depends(place)) -> ...

Successful responses carry the tightest limiter's RateLimit-* headers; a refusal is a 429 problem
with Retry-After; a fail-closed limiter whose backend is down answers 503.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from rampart.platform.http.services import ServiceSlot
from rampart.ratelimit.domain import SCOPES
from rampart.ratelimit.service import RateLimits

#: The named limiters (Redis-backed when Redis is configured).
rate_limits_slot: ServiceSlot[RateLimits] = ServiceSlot("rate limits")
RateLimitsDep = Annotated[RateLimits, Depends(rate_limits_slot)]


def _client_ip(request: Request) -> str | None:
    ctx = getattr(request.state, "request_context", None)
    ip = getattr(ctx, "client_ip", None)
    if ip:
        return str(ip)
    return request.client.host if request.client else None


def subjects_for(
    names: tuple[str, ...], request: Request, principal: Any | None
) -> list[tuple[str, str]]:
    """(limiter, subject) pairs that apply to this request."""
    hits: list[tuple[str, str]] = []
    for name in names:
        scope = name.split(".", 1)[0]
        subject: str | None
        if scope == "ip":
            subject = _client_ip(request)
        elif scope == "user":
            subject = getattr(principal, "user_id", None)
        elif scope == "key":
            is_key = getattr(principal, "method", None) == "apikey"
            subject = getattr(principal, "credential_id", None) if is_key else None
        else:
            subject = "*"
        if subject:
            hits.append((name, subject))
    return hits


def rate_limit(
    *names: str, after: Callable[..., Any] | None = None
) -> Callable[..., Awaitable[None]]:
    """A dependency applying the named limiters (see the module docstring)."""
    for name in names:
        if name.split(".", 1)[0] not in SCOPES:
            raise ValueError(f"unknown limiter scope in {name!r}")
    needs_principal = any(n.split(".", 1)[0] in ("user", "key") for n in names)
    if needs_principal and after is None:
        raise ValueError(f"{names}: user and key limiters need after=<the access dependency>")

    def apply(
        limits: RateLimits, request: Request, response: Response, principal: Any | None
    ) -> None:
        decision = limits.hit_all(subjects_for(names, request, principal))
        if decision is not None:
            response.headers.update(decision.headers())

    async def applied(request: Request, response: Response, principal: Any | None) -> None:
        limits = rate_limits_slot.of(request.app)
        if not limits.blocking:
            # In-process state: a few microseconds, far less than a hop to the thread pool.
            apply(limits, request, response, principal)
        else:
            # Redis: in the thread pool, so that a slow network never stalls the event loop.
            await run_in_threadpool(apply, limits, request, response, principal)

    if after is None:

        async def dependency(request: Request, response: Response) -> None:
            await applied(request, response, None)

    else:

        async def dependency(  # type: ignore[misc]
            request: Request, response: Response, principal: Any = Depends(after)
        ) -> None:
            await applied(request, response, principal)

    dependency.__name__ = "rate_limit_" + "_".join(
        n.replace(".", "_").replace("-", "_") for n in names
    )
    return dependency

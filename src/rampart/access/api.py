"""Route-level access: `Depends(requires(Permission.X))` authenticates and authorises a request.

Authentication is pluggable: each credential kind (bearer token, browser session, signed API-key
request) is an `Authenticator` in the app's `authenticators_slot`. The first that recognises the
request's credentials returns a `Principal`; a credential that is present but invalid raises
`UnauthorizedError` with its own problem type. No credential at all is 401; a principal without
the permission is 403 (`staff-mfa-required` when it is a staff permission their roles give but
their sign-in carried no WebAuthn factor: see `rampart.access.domain.person_principal`). The
check is audited either way, durable before the response (see
`rampart.access.recorder` for the three ways it gets there).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Protocol, cast, runtime_checkable

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from rampart.access.domain import (
    MfaEnrolmentRequiredError,
    Principal,
    check_staff_step_up,
    refusal,
)
from rampart.access.recorder import CarriedDecision
from rampart.kernel.context import current_context, set_context
from rampart.kernel.errors import AuditUnavailableError, UnauthorizedError
from rampart.kernel.events import AuditEvent
from rampart.platform.http.access import declare_access
from rampart.platform.http.deps import clock_slot, database_slot, settings_slot
from rampart.platform.http.services import ServiceSlot


class Authenticator(Protocol):
    async def authenticate(self, request: HTTPConnection) -> Principal | None:
        """A principal when this authenticator's credentials are present and valid; None when
        they are absent; raises `UnauthorizedError` when present but invalid."""
        ...


@runtime_checkable
class RevocationCheck(Protocol):
    """An authenticator that can tell, after the fact, whether a credential it accepted has been
    revoked since (long-lived connections ask it again and again: it must be cheap, cached)."""

    async def revoked(self, principal: Principal) -> bool | None:
        """True when revoked, False when still good, None when `principal` is not its kind.
        Expiry is not revocation: a stream outlives the access token that opened it."""
        ...


async def credential_revoked(conn: HTTPConnection, principal: Principal) -> bool:
    """Whether the credential `principal` authenticated with has been revoked (logout, lock,
    password reset, sign-out everywhere, a revoked key); asks the authenticator of its kind."""
    for authenticator in authenticators_slot.of(conn.app):
        if isinstance(authenticator, RevocationCheck):
            answer = await authenticator.revoked(principal)
            if answer is not None:
                return answer
    return False


class AccessDecisionRecorder(Protocol):
    """Writes one permission check, allowed or denied, to the audit log (see `recorder`)."""

    async def record(
        self, principal: Principal, permission: str, allowed: bool, route: str
    ) -> None:
        """Append the decision and wait until it is durable."""
        ...

    def carry(
        self, principal: Principal, permission: str, route: str, ts_ns: int
    ) -> CarriedDecision:
        """An allowed decision prepared for the route's own transaction."""
        ...

    async def append(self, event: AuditEvent) -> None:
        """Append an event and wait until it is durable."""
        ...


class EnrolledFactors(Protocol):
    """Whether a person has a second factor (`rampart.identity.mfa`, a layer above)."""

    def has_mfa(self, session: Session, user_id: str) -> bool: ...


#: The credential checkers, tried in order.
authenticators_slot: ServiceSlot[Sequence[Authenticator]] = ServiceSlot("authenticators")
#: Writes every permission check to the audit log.
decision_recorder_slot: ServiceSlot[AccessDecisionRecorder | None] = ServiceSlot("access recorder")
#: Second factors, for the `identity.require_second_factor` policy.
enrolled_factors_slot: ServiceSlot[EnrolledFactors] = ServiceSlot("enrolled factors")


class _Pending:
    """The allowed decisions a request's transaction is to carry, not durable yet."""

    __slots__ = ("carried",)

    def __init__(self) -> None:
        self.carried: list[CarriedDecision] = []


_PENDING = "rampart.access_pending"


def _pending(request: HTTPConnection) -> _Pending | None:
    """The request's carried decisions, holding its response until they are durable.

    The hold is a callback on the exit stack FastAPI closes after the handler returns (or raises)
    and before it sends the response (the stack its function-scoped dependencies use), so nothing
    answers, success or error, while a decision the handler's transaction was to carry could
    still be lost. Without that stack (a WebSocket) there is no hold: None, and the caller records
    the decision durably before going on.
    """
    scope = request.scope
    pending: _Pending | None = scope.get(_PENDING)
    if pending is not None:
        return pending
    stack = scope.get("fastapi_function_astack")
    if scope["type"] != "http" or not isinstance(stack, AsyncExitStack):
        return None
    pending = scope[_PENDING] = _Pending()
    stack.push_async_callback(_settle, request, pending)
    return pending


async def _settle(request: HTTPConnection, pending: _Pending) -> None:
    """Append what the handler's transaction was to carry but did not commit."""
    request.scope.pop(_PENDING, None)
    owed = [d for d in pending.carried if not d.committed]
    # Decisions are carried only when there is a recorder (`requires`): it appends them.
    recorder = decision_recorder_slot.of(request.app)
    if owed and recorder is not None:
        results = await asyncio.gather(
            *(recorder.append(d.event) for d in owed), return_exceptions=True
        )
        if any(isinstance(r, BaseException) for r in results):
            raise AuditUnavailableError


def carried_decisions(request: HTTPConnection) -> list[CarriedDecision]:
    """The request's allowed decisions for its own transaction to write.

    For routes declared with `requires(..., carried=True)`. Write each one's `event` (with its
    `context` and `ts_ns`) in the transaction and set `committed` once it has committed; whatever
    is not marked is appended to the audit log before the response.
    """
    pending: _Pending | None = request.scope.get(_PENDING)
    if pending is None:
        return []
    return [d for d in pending.carried if not d.committed]


async def authenticate(request: HTTPConnection) -> Principal:
    # The state dict itself: a missing attribute on `request.state` costs an exception.
    state = request.scope.get("state")
    cached = state.get("principal") if state is not None else None
    if cached is not None:
        return cast(Principal, cached)
    for authenticator in authenticators_slot.of(request.app):
        principal = await authenticator.authenticate(request)
        if principal is not None:
            request.state.principal = principal
            # Audit entries and logs of this request now name the principal.
            set_context(current_context().with_actor(principal.actor))
            return principal
    raise UnauthorizedError("Sign in, or sign the request with an API key.")


async def require_enrolled_second_factor(request: HTTPConnection, principal: Principal) -> None:
    """The `identity.require_second_factor` policy: a person who has no second factor reaches
    nothing behind a permission, only what `authenticated()` opens (their profile, factor
    enrolment, sign-out), with 403 `mfa-enrolment-required`.

    A sign-in completed with a factor (`mfa_at`) has one by definition; only the others are
    looked up (a factor enrolled during this sign-in counts at once). API keys are minted only
    after a step-up, so they always belong to someone with a factor."""
    if principal.mfa_at is not None or principal.method == "apikey" or principal.user_id is None:
        return
    app = request.app
    if not settings_slot.of(app).second_factor_required:
        return
    factors = enrolled_factors_slot.of(app)
    db = database_slot.of(app)
    user_id = principal.user_id

    def enrolled() -> bool:
        with db.read() as session:
            return bool(factors.has_mfa(session, user_id))

    if not await run_in_threadpool(enrolled):
        raise MfaEnrolmentRequiredError(
            "Set up a second factor in your security settings first; until then only that "
            "and signing out are open."
        )


def requires(
    permission: str, *, carried: bool = False
) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """A dependency that returns the principal when it holds `permission`, and refuses otherwise.

    The check is recorded in the audit log, allowed or denied, and is durable before the
    handler runs. With `carried=True` an allowed check is instead written by the route's own
    transaction (see `carried_decisions`), so that the request commits once, and is durable
    before the response: only for routes that hold no write transaction of their own open past
    the handler (on SQLite an open write transaction holds the database's one write lock, which
    the audit log would then wait for).
    """

    async def dependency(request: HTTPConnection) -> Principal:
        principal = await authenticate(request)
        await require_enrolled_second_factor(request, principal)
        allowed = principal.can(permission)
        recorder = decision_recorder_slot.of(request.app)
        if recorder is not None:
            route = str(request.scope.get("path", ""))
            pending = _pending(request) if allowed and carried else None
            if pending is None:
                await recorder.record(principal, permission, allowed, route)
            else:
                ts_ns = clock_slot.of(request.app).time_ns()
                pending.carried.append(recorder.carry(principal, permission, route, ts_ns))
        if not allowed:
            # `staff-mfa-required` for a staff permission withheld for want of WebAuthn.
            raise refusal(principal, permission)
        return principal

    dependency.__name__ = f"requires_{permission.replace(':', '_').replace('-', '_')}"
    return declare_access(dependency, permission)


def requires_staff_step_up(permission: str) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """`requires(permission)` for a sensitive staff action: also a WebAuthn factor proven within
    `mfa.staff_step_up_minutes`, or 401 `step-up-required` (the policy of
    `rampart.identity.mfa`'s `require_step_up` for its staff actions, for routes below it)."""
    check_permission = requires(permission)

    async def dependency(request: HTTPConnection) -> Principal:
        principal = await check_permission(request)
        app = request.app
        check_staff_step_up(
            principal,
            clock_slot.of(app).time_ns() / 1e9,
            step_up_minutes=settings_slot.of(app).mfa.staff_step_up_minutes,
        )
        return principal

    dependency.__name__ = f"staff_step_up_{permission.replace(':', '_').replace('-', '_')}"
    return declare_access(dependency, f"{permission}+staff-step-up")


def authenticated() -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """A dependency for routes any signed-in principal may use (their own profile, logout)."""

    async def dependency(request: HTTPConnection) -> Principal:
        return await authenticate(request)

    return declare_access(dependency, "authenticated")

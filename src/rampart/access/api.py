"""Route-level access: `Depends(requires(Permission.X))` authenticates and authorises a request.

Authentication is pluggable: each credential kind (bearer token, browser session, signed API-key
request) registers an `Authenticator` on the container. The first that recognises the request's
credentials returns a `Principal`; a credential that is present but invalid raises
`UnauthorizedError` with its own problem type. No credential at all is 401; a principal without
the permission is 403 (the check is audited either way: see `AccessDecisionRecorder`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.requests import HTTPConnection

from rampart.access.domain import PermissionDeniedError, Principal
from rampart.kernel.context import current_context, set_context
from rampart.kernel.errors import UnauthorizedError
from rampart.platform.http.access import declare_access


class Authenticator(Protocol):
    async def authenticate(self, request: HTTPConnection) -> Principal | None:
        """A principal when this authenticator's credentials are present and valid; None when
        they are absent; raises `UnauthorizedError` when present but invalid."""
        ...


class AccessDecisionRecorder(Protocol):
    """Writes one permission check, allowed or denied, to the audit log."""

    async def record(
        self, principal: Principal, permission: str, allowed: bool, route: str
    ) -> None: ...


async def authenticate(request: HTTPConnection) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    container = request.app.state.container
    for authenticator in getattr(container, "authenticators", ()):
        principal = await authenticator.authenticate(request)
        if principal is not None:
            request.state.principal = principal
            # Audit entries and logs of this request now name the principal.
            set_context(current_context().with_actor(principal.actor))
            return principal
    raise UnauthorizedError("Sign in, or sign the request with an API key.")


def requires(permission: str) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """A dependency that returns the principal when it holds `permission`, and refuses otherwise."""

    async def dependency(request: HTTPConnection) -> Principal:
        principal = await authenticate(request)
        allowed = principal.can(permission)
        recorder: AccessDecisionRecorder | None = getattr(
            request.app.state.container, "access_recorder", None
        )
        if recorder is not None:
            await recorder.record(principal, permission, allowed, request.url.path)
        if not allowed:
            raise PermissionDeniedError(f"This needs the `{permission}` permission.")
        return principal

    dependency.__name__ = f"requires_{permission.replace(':', '_').replace('-', '_')}"
    return declare_access(dependency, permission)


def authenticated() -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """A dependency for routes any signed-in principal may use (their own profile, logout)."""

    async def dependency(request: HTTPConnection) -> Principal:
        return await authenticate(request)

    return declare_access(dependency, "authenticated")

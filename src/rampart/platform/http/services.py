"""Typed seams between routers and the services they use.

Why: docs/decisions/0001-services-not-container.md.

A router declares each service it needs as a `ServiceSlot` next to its routes and takes it as a
FastAPI dependency, `Annotated[RiskService, Depends(risk_service)]`; the application binds every
slot to an instance once, when it is built (`rampart.web.wiring`). A domain therefore names only
the types it uses, never the object that holds them all, and the import contracts can forbid
the bootstrap module below the web layer. A route run on an app that did not bind a slot fails
loudly at its first request, naming the slot; a test replaces one with
`app.dependency_overrides[slot]`, as with any dependency.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, cast

from starlette.requests import HTTPConnection

T = TypeVar("T")


class ServiceNotBoundError(LookupError):
    """The application was built without binding a slot one of its routes uses."""


class ServiceSlot(Generic[T]):
    """A service a router uses, by the type it has; a FastAPI dependency returning it."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"ServiceSlot({self.name!r})"

    async def __call__(self, conn: HTTPConnection) -> T:
        # A coroutine, so that FastAPI resolves it on the event loop: a plain function would
        # cost every request a hop to the thread pool per service.
        return self.of(conn.app)

    def of(self, app: Any) -> T:
        """The instance bound on `app` (for code that runs with a request but outside a route's
        signature: authentication, a dependency factory's inner function)."""
        bound: BoundServices | None = getattr(app.state, "services", None)
        if bound is None:
            raise ServiceNotBoundError(f"no services are bound on this app (wanted {self.name})")
        return bound.get(self)


class BoundServices:
    """Each slot's instance for one application, filled once when the app is built."""

    def __init__(self) -> None:
        self._instances: dict[ServiceSlot[Any], object] = {}

    def bind(self, slot: ServiceSlot[T], instance: T) -> None:
        self._instances[slot] = instance

    def get(self, slot: ServiceSlot[T]) -> T:
        try:
            return cast(T, self._instances[slot])
        except KeyError:
            raise ServiceNotBoundError(f"{slot.name} is not bound on this app") from None


def bind_services(app: Any, services: BoundServices) -> None:
    """Make `services` what every slot of `app`'s routes resolves to."""
    app.state.services = services

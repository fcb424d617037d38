"""Route dispatch by the first two path segments, instead of trying every route in turn.

FastAPI matches a request against the app's routes one by one, each included router trying each
of its routes: about a microsecond per route, ~100 µs for `/v1/orders` behind ~90 routes. Here
each top-level route (an included router counts as all its effective routes) is filed under the
literal first two segments of the paths it can match (a segment with a `{parameter}` files it
under every value). A request is handed to a shallow copy of the app's router whose route list
holds only the entries filed under its own two segments, in their original order; FastAPI's own
loop then runs over those few. A route that is left out could not have matched the path at all
(neither fully nor by method alone), so what answers, and in what order routes are tried, is
unchanged; the trailing-slash redirect is kept by filing a request with fewer than two non-empty
segments under its first segment only.

Routes added to the app after it is built (tests add probes) are noticed by the app router's
routes counter, and the index is rebuilt; routes added to a router after it was included are not
(nothing does that: routers are complete when `create_app` includes them).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

from fastapi import FastAPI
from fastapi.routing import APIRouter
from starlette._utils import get_route_path
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send

#: A segment that can take any value (a path parameter, or a route of unknown shape).
ANY = None
_Pattern = tuple[str | None, str | None]


def _pattern(path: str | None) -> _Pattern:
    if path is None or not path.startswith("/"):
        return (ANY, ANY)
    segments = path.split("/", 3)[1:3]
    first = segments[0] if "{" not in segments[0] else ANY
    if first is ANY:
        return (ANY, ANY)
    second = segments[1] if len(segments) > 1 and "{" not in segments[1] else ANY
    return (first, second)


def _route_paths(route: BaseRoute) -> Iterator[str | None]:
    """The effective paths a top-level route entry can match (None: any path)."""
    contexts = getattr(route, "effective_route_contexts", None)
    if contexts is not None:  # an included router: its routes with the include's prefix
        low_priority = getattr(route, "effective_low_priority_routes", None)
        if low_priority is not None and low_priority():
            yield None
        for context in contexts():
            yield getattr(context, "path", None) or None
        return
    if type(route).__name__ == "Host":
        yield None
        return
    yield getattr(route, "path", None)


class SegmentIndex:
    """The innermost ASGI app of the router: picks the routes a request's path can reach."""

    def __init__(self, router: APIRouter) -> None:
        self._router = router
        self._version: tuple[int, int] | None = None
        self._views: dict[_Pattern, APIRouter] = {}
        self._literals: dict[str, set[str]] = {}
        self._patterns: list[tuple[BaseRoute, set[_Pattern]]] = []

    def _routes_version(self) -> tuple[int, int]:
        # The app router's own counter (include_router and add_route move it) and length: a
        # walk through every included router's version costs more than the match it saves.
        return (getattr(self._router, "_routes_version", 0), len(self._router.routes))

    def _rebuild(self, version: tuple[int, int]) -> None:
        self._patterns = [
            (route, {_pattern(p) for p in _route_paths(route)}) for route in self._router.routes
        ]
        literals: dict[str, set[str]] = {}
        for _route, patterns in self._patterns:
            for first, second in patterns:
                if first is not ANY:
                    seconds = literals.setdefault(first, set())
                    if second is not ANY:
                        seconds.add(second)
        self._literals = literals
        self._views = {}
        self._version = version

    def _view(self, key: _Pattern) -> APIRouter:
        view = self._views.get(key)
        if view is None:
            first, second = key
            routes = [
                route
                for route, patterns in self._patterns
                if any(_reaches(pattern, first, second) for pattern in patterns)
            ]
            view = copy.copy(self._router)
            view.routes = routes
            self._views[key] = view
        return view

    def _key(self, path: str) -> _Pattern:
        segments = path.split("/", 3)[1:3]
        first = segments[0] if segments else ""
        seconds = self._literals.get(first)
        if seconds is None:
            return (ANY, ANY)  # no route names this first segment: only the catch-alls
        if len(segments) < 2 or not segments[1] or segments[1] not in seconds:
            return (first, ANY)
        return (first, segments[1])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        router = self._router
        if scope["type"] not in ("http", "websocket"):
            await router.app(scope, receive, send)
            return
        version = self._routes_version()
        if version != self._version:
            self._rebuild(version)
        view = self._view(self._key(get_route_path(scope)))
        # `url_for` resolves names through scope["router"]: the whole router, not the view.
        scope.setdefault("router", router)
        await view.app(scope, receive, send)


def _reaches(pattern: _Pattern, first: str | None, second: str | None) -> bool:
    """Whether a route filed under `pattern` may match a path filed under (first, second).

    `first` ANY: the path's first segment is named by no route (only catch-alls can match);
    `second` ANY: the second segment is absent, empty or named by no route under `first`.
    """
    route_first, route_second = pattern
    if route_first is ANY:
        return True
    if first is ANY or route_first != first:
        return False
    if route_second is ANY:
        return True
    if second is ANY:
        # Only a route ending in `/` (second segment empty) may still match, or be the
        # target of the trailing-slash redirect.
        return route_second == ""
    return route_second == second


def index_routes(app: FastAPI) -> None:
    """Dispatch `app`'s requests through a `SegmentIndex` (when its router has no middleware)."""
    router = app.router
    if router.middleware_stack == router.app:
        router.middleware_stack = SegmentIndex(router)

"""Every route declares who may call it, or the app refuses to start.

A route declares access through a dependency carrying the `__rampart_access__` attribute:
`Depends(public)` for routes anyone may call (health, login, JWKS), or the dependency returned by
`rampart.access` for a permission (`requires("order:place")`). `check_routes_declare_access`
walks every route's dependency tree at start-up; one undeclared route stops the app, so a new
endpoint cannot ship without a decision about who may use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute

ACCESS_ATTRIBUTE = "__rampart_access__"


class UndeclaredAccessError(Exception):
    def __init__(self, routes: list[str]) -> None:
        self.routes = routes
        super().__init__(
            "routes without an access declaration (public or a permission): " + ", ".join(routes)
        )


def declare_access(dependency: Callable[..., Any], declaration: str) -> Callable[..., Any]:
    setattr(dependency, ACCESS_ATTRIBUTE, declaration)
    return dependency


def public() -> None:
    """Dependency marking a route as callable without authentication."""


declare_access(public, "public")


def _walk(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _walk(sub)


def _route_entries(app: FastAPI) -> Iterator[tuple[str, str, Dependant | None]]:
    """(methods, path, effective dependant) of every API and WebSocket route, included ones too.

    FastAPI keeps an included router as one entry whose routes only exist with the including
    router's prefix and dependencies merged in; `iter_route_contexts` yields those effective
    routes, so router-level declarations count and no included route is missed.
    """
    from fastapi import routing

    for context in routing.iter_route_contexts(app.routes):
        original = context.original_route
        if isinstance(original, APIRoute):
            methods = ",".join(sorted(context.methods or ()))
        elif isinstance(original, APIWebSocketRoute):
            methods = "WEBSOCKET"
        else:
            continue
        # The path as clients write it: `{order_id}`, not the routing form `{order_id:id}`.
        path = getattr(context, "path_format", None) or context.path
        yield methods, str(path), getattr(context, "dependant", None)


def route_table(app: FastAPI) -> list[tuple[str, str, list[str]]]:
    """(methods, path, declarations) for every API route: what access tests are generated from."""
    table = []
    for methods, path, dependant in _route_entries(app):
        declarations = []
        if dependant is not None:
            for call in _walk(dependant):
                declaration = getattr(call, ACCESS_ATTRIBUTE, None)
                if declaration is not None:
                    declarations.append(str(declaration))
        table.append((methods, path, declarations))
    return table


def check_routes_declare_access(app: FastAPI) -> None:
    missing = [f"{methods} {path}" for methods, path, decl in route_table(app) if not decl]
    if missing:
        raise UndeclaredAccessError(missing)

"""The segment index hands every request the same route FastAPI's linear scan would pick."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.routing import Match

from rampart.bootstrap import Container
from rampart.platform.http.access import route_table
from rampart.web.routing import SegmentIndex


def _scope(app: FastAPI, method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "query_string": b"",
        "app": app,
    }


def _first_match(routes: list[Any], scope: dict[str, Any]) -> Any:
    """What FastAPI's loop settles on: the first full match, else the first partial one."""
    partial = None
    for route in routes:
        match, _ = route.matches(dict(scope))
        if match == Match.FULL:
            return route
        if match == Match.PARTIAL and partial is None:
            partial = route
    return partial


def _index(app: FastAPI) -> SegmentIndex:
    index = app.router.middleware_stack
    assert isinstance(index, SegmentIndex)
    return index


def _picked(app: FastAPI, method: str, path: str) -> tuple[Any, Any]:
    index = _index(app)
    version = index._routes_version()
    if version != index._version:
        index._rebuild(version)
    view = index._view(index._key(path))
    scope = _scope(app, method, path)
    return _first_match(app.router.routes, scope), _first_match(view.routes, scope)


def _redirect_target(app: FastAPI, method: str, path: str, toggled: str, *, indexed: bool) -> Any:
    routes = app.router.routes
    if indexed:
        index = _index(app)
        routes = index._view(index._key(path)).routes
    scope = _scope(app, method, toggled)
    for route in routes:
        match, _ = route.matches(dict(scope))
        if match != Match.NONE:
            return route
    return None


def _sample_paths(app: FastAPI) -> list[tuple[str, str]]:
    samples = []
    for methods, path, _ in route_table(app):
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        for method in methods.split(","):
            if method == "WEBSOCKET":
                continue
            samples += [(method, concrete), (method, concrete + "/"), ("DELETE", concrete)]
    return samples


def test_every_route_is_reached_as_before(app: FastAPI) -> None:
    samples = _sample_paths(app)
    assert len(samples) > 100
    for method, path in samples:
        linear, indexed = _picked(app, method, path)
        assert indexed is linear, (method, path)


@pytest.fixture
def segments(app: FastAPI) -> list[str]:
    words = {"", "x1", "nothing", "static", "v1", "api"}
    for _, path, _ in route_table(app):
        words.update(s for s in path.split("/") if "{" not in s)
    return sorted(words)


def test_routes_added_after_the_app_is_built_are_reached(
    app: FastAPI, container: Container
) -> None:
    from fastapi import APIRouter, Depends

    from rampart.platform.http.access import public

    late = APIRouter(dependencies=[Depends(public)])

    @late.get("/late-probe/{item}")
    def probe(item: str) -> dict[str, str]:
        return {"item": item}

    app.include_router(late)
    linear, indexed = _picked(app, "GET", "/late-probe/7")
    assert linear is not None
    assert indexed is linear


def test_arbitrary_paths_reach_the_same_route(app: FastAPI, segments: list[str]) -> None:
    @given(
        st.sampled_from(["GET", "POST", "PATCH", "DELETE"]),
        st.lists(st.sampled_from(segments), min_size=0, max_size=4),
    )
    @settings(max_examples=300, deadline=None)
    def check(method: str, parts: list[str]) -> None:
        path = "/" + "/".join(parts)
        linear, indexed = _picked(app, method, path)
        assert indexed is linear, (method, path)
        if path != "/":
            # The trailing-slash redirect looks for the toggled path among the same routes.
            toggled = path[:-1] if path.endswith("/") else path + "/"
            assert _redirect_target(app, method, path, toggled, indexed=True) is (
                _redirect_target(app, method, path, toggled, indexed=False)
            ), (method, path)

    check()

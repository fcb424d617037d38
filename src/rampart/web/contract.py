"""The API's contract: every answer a route can give, and how to authenticate, in its OpenAPI.

FastAPI documents a route's success and its request-validation 422 (as plain JSON). What a client
relies on is wider: every error is RFC 9457 `application/problem+json`, a route that needs a
principal answers 401 and 403, a rate-limited route 429, and so on. Rather than every route
listing these by hand (and forgetting some), they follow from what the route declares:

- 422 when it takes any input (path, query, header, cookie, body) or needs a principal;
- 400 (a body that is not text: FastAPI cannot parse it) and 413 (the edge's size limit) when
  it has a body;
- 401, 403 and 503 when it needs a principal (`requires(...)`, `authenticated()`): 503 when its
  access decision could not be made durable;
- 404 when it has a path parameter;
- 429 (with Retry-After) and 503 when it applies a rate limiter (`rate_limit(...)`): 503 when
  a fail-closed limiter's store is down.

A route adds what only it can answer with `responses=problem_responses(409)`. Each route
that needs a principal also carries the three ways to be one (`securitySchemes`): a bearer access
token, the browser session cookie (with its CSRF header on unsafe methods), or an RFC 9421
signature made with an API key. The contract tests (tests/platform/test_api_contract.py) hold
the routes to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from rampart.identity.authn import CSRF_HEADER, SESSION_COOKIE
from rampart.platform.http.access import ACCESS_ATTRIBUTE
from rampart.platform.http.problems import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPE_PREFIX,
    problem_title,
)
from rampart.web.apidoc import API_DESCRIPTION

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem. Clients branch on `type`, never on `title` or `detail`.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {
            "type": "string",
            "pattern": f"^{PROBLEM_TYPE_PREFIX}[a-z0-9-]+$",
            "description": "A stable URN naming the kind of problem.",
        },
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request's path."},
        "request_id": {"type": "string", "description": "Quote it to support."},
        "errors": {
            "type": "array",
            "description": "For `validation`: the fields that are invalid, and why.",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "kind"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "kind": {"type": "string"},
                },
            },
        },
    },
    # A problem type may carry members of its own (`retry_after`, `factors`, ...).
    "additionalProperties": True,
}

SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token from `POST /v1/auth/login` (15 minutes; refresh it).",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The browser session, set by the sign-in page.",
    },
    "csrf": {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": "With the session cookie on unsafe methods: the session's CSRF token.",
    },
    "signature": {
        "type": "apiKey",
        "in": "header",
        "name": "Signature",
        "description": (
            "An RFC 9421 HTTP message signature made with an API key, over `@method`, "
            "`@target-uri` and, with a body, `content-digest` and `content-type` (see the top "
            "of this page)."
        ),
    },
    "signatureInput": {
        "type": "apiKey",
        "in": "header",
        "name": "Signature-Input",
        "description": (
            "The RFC 9421 signature's covered components and parameters: `keyid`, `created`, "
            "`nonce` and, optionally, `alg` (`hmac-sha256` or `ed25519`)."
        ),
    },
}

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "The scheme."}},
    429: {
        "Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."},
    },
}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response object of a problem with `status`."""
    response: dict[str, Any] = {
        "description": description or problem_title(status),
        "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _params(dependant: Dependant, kind: str) -> Iterator[Any]:
    yield from getattr(dependant, kind)
    for sub in dependant.dependencies:
        yield from _params(sub, kind)


def needs_principal(dependant: Dependant) -> bool:
    """Whether the route declares access other than `public`."""
    declarations = {getattr(c, ACCESS_ATTRIBUTE, None) for c in _calls(dependant)} - {None}
    return bool(declarations - {"public"})


def inferred_statuses(dependant: Dependant) -> set[int]:
    """The error statuses a route can answer with, from what it declares (see the module)."""
    calls = list(_calls(dependant))
    signed_in = needs_principal(dependant)
    rate_limited = any(getattr(c, "__name__", "").startswith("rate_limit_") for c in calls)
    kinds = ("path_params", "query_params", "header_params", "cookie_params", "body_params")
    has_input = any(next(_params(dependant, kind), None) is not None for kind in kinds)
    has_body = next(_params(dependant, "body_params"), None) is not None
    has_path = next(_params(dependant, "path_params"), None) is not None
    statuses: set[int] = set()
    if has_input or signed_in:
        statuses.add(422)
    if has_body:
        statuses |= {400, 413}
    if signed_in:
        statuses |= {401, 403, 503}
    if has_path:
        statuses.add(404)
    if rate_limited:
        statuses |= {429, 503}
    return statuses


def _security(methods: set[str]) -> list[dict[str, list[str]]]:
    session: dict[str, list[str]] = {"session": []}
    if methods - _SAFE_METHODS:
        session["csrf"] = []
    return [{"bearer": []}, session, {"signature": [], "signatureInput": []}]


def complete_contract(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """Add the problems, the Problem schema, the security schemes and the description of how to
    authenticate (`rampart.web.apidoc`) to FastAPI's `schema`."""
    schema.setdefault("info", {})["description"] = API_DESCRIPTION
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    paths = schema.get("paths", {})
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        dependant = getattr(context, "dependant", None)
        if not isinstance(route, APIRoute) or dependant is None:
            continue
        if not getattr(context, "include_in_schema", route.include_in_schema):
            continue
        methods = set(context.methods or ())
        for method in methods:
            operation = paths.get(context.path_format, {}).get(method.lower())
            if operation is None:
                continue
            _complete_operation(operation, dependant, methods)
    # FastAPI's own 422 body is replaced by the problem everywhere.
    for name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(name, None)
    return schema


def _complete_operation(operation: dict[str, Any], dependant: Dependant, methods: set[str]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    statuses = inferred_statuses(dependant)
    statuses |= {int(code) for code in responses if code.isdigit() and int(code) >= 400}
    for status in sorted(statuses):
        declared = responses.get(str(status), {})
        response = problem_response(status, declared.get("description"))
        responses[str(status)] = response
    if needs_principal(dependant):
        operation["security"] = _security(methods)


def install_contract(app: FastAPI) -> None:
    """Make `app.openapi()` the completed contract (computed once, on first use)."""
    original = app.openapi
    completed: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not completed:
            completed.append(complete_contract(app, original()))
        return completed[0]

    app.openapi = openapi  # type: ignore[method-assign]

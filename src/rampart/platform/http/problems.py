"""The one place where errors become HTTP: RFC 9457 `application/problem+json`.

Each problem has a stable `type` (`urn:rampart:problem:<code>`) that clients branch on, a short
`title`, a `detail` safe to show, the `status`, the `instance` path and the `request_id` to quote
to support. Nothing else: no stack trace, no SQL, no echo of the submitted values.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from rampart.kernel import errors
from rampart.kernel.context import current_context

PROBLEM_TYPE_PREFIX = "urn:rampart:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"

#: Most specific first: a domain error's status is that of the nearest listed ancestor.
STATUS_BY_ERROR: list[tuple[type[errors.RampartError], int]] = [
    (errors.ValidationError, 422),
    (errors.NotFoundError, 404),
    (errors.ConflictError, 409),
    (errors.UnauthorizedError, 401),
    (errors.ForbiddenError, 403),
    (errors.RateLimitedError, 429),
    (errors.UnavailableError, 503),
]

_HTTP_CODES: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict with the current state"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("validation", "The request is not valid"),
    429: ("rate-limited", "Too many requests"),
    500: ("internal", "Internal error"),
    503: ("unavailable", "Temporarily unavailable"),
}


def problem_body(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    instance: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    request_id = current_context().request_id
    if request_id:
        body["request_id"] = request_id
    body.update(extra)
    return body


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    return Response(
        orjson.dumps(problem_body(status, code, title, detail, instance, **extra)),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def status_for(exc: errors.RampartError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def _safe_extra(extra: dict[str, Any]) -> dict[str, Any]:
    # Only plain JSON scalars and lists of them leave the process.
    safe: dict[str, Any] = {}
    for key, value in extra.items():
        if (
            isinstance(value, str | int | float | bool)
            or value is None
            or (isinstance(value, list) and all(isinstance(v, str | int | float) for v in value))
        ):
            safe[key] = value
    return safe


def rampart_error_response(exc: errors.RampartError, path: str | None) -> Response:
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.RateLimitedError):
        headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="rampart"'
    # An error may carry response headers of its own (RateLimit-*, a Signature challenge).
    extra_headers = getattr(exc, "headers", None)
    if isinstance(extra_headers, dict):
        headers.update({str(k): str(v) for k, v in extra_headers.items()})
    return problem_response(
        status, exc.code, exc.title, exc.detail, path, headers or None, **_safe_extra(exc.extra)
    )


def install_problem_handlers(app: FastAPI) -> None:
    async def on_rampart_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.RampartError)
        return rampart_error_response(exc, request.url.path)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # Each error names the field and the rule; the submitted value is never echoed back,
        # because it may be a password or a card number.
        details = [
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", "invalid")),
                "kind": str(err.get("type", "invalid")),
            }
            for err in exc.errors()[:50]
        ]
        return problem_response(
            422,
            "validation",
            "The request is not valid",
            "One or more fields are invalid.",
            request.url.path,
            errors=details,
        )

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code, title = _HTTP_CODES.get(exc.status_code, ("http-error", "HTTP error"))
        detail = (
            exc.detail
            if isinstance(exc.detail, str) and exc.detail.lower() != title.lower()
            else None
        )
        return problem_response(
            exc.status_code, code, title, detail, request.url.path, dict(exc.headers or {}) or None
        )

    app.add_exception_handler(errors.RampartError, on_rampart_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)

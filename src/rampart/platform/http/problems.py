"""The one place where errors become HTTP: RFC 9457 `application/problem+json`.

Each problem has a stable `type` (`urn:rampart:problem:<code>`) that clients branch on, a short
`title`, a `detail` safe to show, the `status`, the `instance` path and the `request_id` to quote
to support. Nothing else: no stack trace, no SQL, no echo of the submitted values.

People in a browser get the same problem as a page instead (content negotiation): a request that
asks for `text/html` ahead of JSON, outside the API's paths, is answered by the page renderer the
web layer installs with `use_problem_pages` (the site's layout, the message, a way back). API
clients, `fetch()` calls (`Accept: */*`) and anything that cannot be rendered keep problem+json.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DataError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response

from rampart.kernel import errors
from rampart.kernel.context import current_context
from rampart.platform.logging import get_logger
from rampart.platform.security_events import INPUT_REFUSED, log_security_event

log = get_logger("rampart.error")

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


def problem_title(status: int) -> str:
    """The title of the generic problem with `status`."""
    return _HTTP_CODES.get(status, ("", "Problem"))[1]


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """For a route's `responses=`: the problem statuses only this route answers with.

    The app's contract (`rampart.web.contract`) infers the common ones from what a route declares
    (access, inputs, rate limits) and gives every problem its `application/problem+json` body.
    """
    return {status: {"description": problem_title(status)} for status in statuses}


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


#: Paths of the machine interfaces: always problem+json, whatever the Accept header says.
API_PATH_PREFIXES = ("/v1/", "/api/", "/audit/", "/.well-known/")
API_PATHS = frozenset({"/openapi.json", "/healthz", "/readyz"})
_JSON_TYPES = frozenset({"application/json", PROBLEM_MEDIA_TYPE})
#: Renders a problem (the body `problem_body` builds) as a page for a person; may raise, and
#: then the problem goes out as JSON.
ProblemPage = Callable[[StarletteRequest, dict[str, Any]], Response]


def _accept_quality(accept: str) -> tuple[float, float]:
    """(q of text/html, best q of a JSON type) named explicitly in an Accept header."""
    html_q = json_q = 0.0
    # A header of hostile length or shape is read only so far; wildcards name neither.
    for part in accept[:1024].split(",")[:32]:
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = min(1.0, max(0.0, float(value)))
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media == "text/html":
            html_q = max(html_q, quality)
        elif media in _JSON_TYPES:
            json_q = max(json_q, quality)
    return html_q, json_q


def wants_page(path: str, accept: str | None) -> bool:
    """Whether this request is a person's browser navigating (answer errors with a page)."""
    if path in API_PATHS or path.startswith(API_PATH_PREFIXES) or not accept:
        return False
    html_q, json_q = _accept_quality(accept)
    return html_q > 0 and html_q >= json_q


def use_problem_pages(app: Any, page: ProblemPage) -> None:
    """Answer browser navigations' errors with `page` (the web layer's error page)."""
    app.state.problem_page = page


def negotiated_problem(
    request: StarletteRequest, status: int, body: dict[str, Any], headers: dict[str, str] | None
) -> Response:
    """The problem as a page when a person's browser asked and a page renderer is installed,
    else as problem+json. Headers (Retry-After, RateLimit-*, WWW-Authenticate) go with either."""
    app = request.scope.get("app")
    page: ProblemPage | None = getattr(getattr(app, "state", None), "problem_page", None)
    if page is not None and wants_page(request.url.path, request.headers.get("accept")):
        try:
            response = page(request, body)
        except Exception:  # noqa: BLE001 - a broken page must not hide the error itself
            get_logger("rampart.error").error(
                "error page failed; answering problem+json", path=request.url.path, exc_info=True
            )
        else:
            response.status_code = status
            response.headers.update(headers or {})
            return response
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _error_parts(
    exc: errors.RampartError, path: str | None
) -> tuple[int, dict[str, Any], dict[str, str] | None]:
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
    body = problem_body(status, exc.code, exc.title, exc.detail, path, **_safe_extra(exc.extra))
    return status, body, headers or None


#: What orjson says of a value no JSON text can hold: only input puts such values in our hands.
_UNENCODABLE_JSON = ("surrogates not allowed", "exceeds 64-bit range")


def is_input_data_error(exc: BaseException) -> bool:
    """Whether `exc` is a driver's or serialiser's refusal of a value that came from input.

    The backstop behind the typed request models: a NUL byte in a text value (PostgreSQL refuses
    it), a lone surrogate (not UTF-8), an integer past 64 bits (orjson). These are the client's
    data, not a fault of ours, so they answer 422, never 500.
    """
    if isinstance(exc, DataError):
        return True
    if isinstance(exc, StatementError) and exc.orig is not None:
        return is_input_data_error(exc.orig)
    if isinstance(exc, UnicodeEncodeError):
        return exc.reason == "surrogates not allowed"
    if isinstance(exc, orjson.JSONEncodeError):
        return any(reason in str(exc) for reason in _UNENCODABLE_JSON)
    return False


def install_problem_handlers(app: FastAPI) -> None:
    async def on_rampart_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.RampartError)
        status, body, headers = _error_parts(exc, request.url.path)
        if exc.security_event is not None:
            log_security_event(
                exc.security_event, path=request.url.path, status=status, code=exc.code
            )
        return negotiated_problem(request, status, body, headers)

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
        # Repeated refusals from one address are how a probe of the input rules looks: the
        # fields and rules are logged (never the values) for the log platform to count.
        log_security_event(
            INPUT_REFUSED,
            path=request.url.path,
            status=422,
            fields=[".".join(str(p) for p in err.get("loc", ())) for err in exc.errors()[:10]],
            rules=sorted({str(err.get("type", "invalid")) for err in exc.errors()})[:10],
        )
        body = problem_body(
            422,
            "validation",
            "The request is not valid",
            "One or more fields are invalid.",
            request.url.path,
            errors=details,
        )
        return negotiated_problem(request, 422, body, None)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code, title = _HTTP_CODES.get(exc.status_code, ("http-error", "HTTP error"))
        detail = (
            exc.detail
            if isinstance(exc.detail, str) and exc.detail.lower() != title.lower()
            else None
        )
        body = problem_body(exc.status_code, code, title, detail, request.url.path)
        return negotiated_problem(request, exc.status_code, body, dict(exc.headers or {}) or None)

    async def on_data_error(request: Request, exc: Exception) -> Response:
        if not is_input_data_error(exc):
            raise exc
        # The driver's message may quote SQL or the value: only its type is logged, and the
        # answer names neither.
        log.warning("input refused by the driver", path=request.url.path, error=type(exc).__name__)
        return problem_response(
            422,
            "unprocessable-data",
            "The request holds data that cannot be stored",
            "A value holds characters or numbers outside what the service accepts.",
            request.url.path,
        )

    app.add_exception_handler(errors.RampartError, on_rampart_error)
    for data_error in (StatementError, UnicodeEncodeError, orjson.JSONEncodeError):
        app.add_exception_handler(data_error, on_data_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)

"""The edge of every request, as one pure ASGI middleware (one layer is cheaper than four).

In order, for each HTTP request:
1. request id: the caller's `X-Request-ID` when it is well-formed, a fresh one otherwise; echoed
   back and bound to every log line and audit entry of the request;
2. client IP: the socket peer, or the nearest untrusted hop of `X-Forwarded-For` when the peer is a
   configured trusted proxy (anyone else's header is ignored);
3. body size limit: `Content-Length` over the limit is refused up front, and a streamed body is
   cut off when it passes the limit;
4. security headers on every response, errors included: a CSP with a per-request nonce and
   `frame-ancestors 'none'`, nosniff, Referrer-Policy, Permissions-Policy, HSTS in production;
5. a last-resort catch: an unexpected exception becomes a 500 problem naming the request id, and is
   logged by type and location only.

Its own refusals (413, the last-resort 500) are negotiated like every other error: a page for a
person's browser, problem+json for everyone else (`rampart.platform.http.problems`).
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rampart.kernel.context import RequestContext, reset_context, set_context
from rampart.kernel.ids import new_id, random_token
from rampart.platform.http.problems import negotiated_problem, problem_body
from rampart.platform.logging import get_logger

log = get_logger("rampart.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class BodyTooLarge(HTTPException):
    """The streamed body passed the limit.

    An HTTPException so that code between here and the route that catches "any error while
    reading the body" (FastAPI turns those into 400) lets it through, and it ends as a 413 problem.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The body may be at most {limit} bytes.")


#: WebSocket close code "message too big" (RFC 6455, 7.4.1).
WS_MESSAGE_TOO_BIG = 1009


def _csp(nonce: str, path: str) -> str:
    script = f"'self' 'nonce-{nonce}'"
    style = f"'self' 'nonce-{nonce}'"
    return (
        f"default-src 'self'; script-src {script}; style-src {style}; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; "
        "connect-src 'self'"
    )


PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), "
    "publickey-credentials-create=(self), publickey-credentials-get=(self)"
)


class EdgeMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        trusted_proxies: Iterable[str] = (),
        hsts: bool = False,
        access_log: bool = True,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        self.hsts = hsts
        self.access_log = access_log

    def _is_trusted(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.trusted)

    def client_ip(self, scope: Scope, headers: dict[bytes, bytes]) -> str | None:
        peer = scope.get("client")
        ip = peer[0] if peer else None
        if ip is None or not self.trusted or not self._is_trusted(ip):
            return ip
        # Repeated header lines are one list, in order (RFC 9110, 5.3): proxies that add a line
        # of their own rather than extend the last one must not hide the client.
        lines = [v for k, v in scope.get("headers") or () if k == b"x-forwarded-for"]
        if not lines:
            return ip
        forwarded = b",".join(lines)
        # Walk from the nearest hop back; the first one we do not trust is the client.
        for hop in reversed([h.strip() for h in forwarded.decode("latin-1").split(",")]):
            if not hop:
                continue
            if not self._is_trusted(hop):
                try:
                    return str(ipaddress.ip_address(hop))
                except ValueError:
                    return ip
        return ip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or ())
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        # fullmatch: `$` in `match` also accepts a trailing newline, which must never be echoed.
        request_id = incoming if _REQUEST_ID.fullmatch(incoming) else new_id()
        ctx = RequestContext(
            request_id=request_id,
            client_ip=self.client_ip(scope, headers),
            user_agent=headers.get(b"user-agent", b"").decode("latin-1")[:256] or None,
        )
        token = set_context(ctx)
        nonce = random_token(16)
        state = scope.setdefault("state", {})
        state["csp_nonce"] = nonce
        state["request_context"] = ctx
        path: str = scope.get("path", "")
        status_holder = {"status": 0}
        try:
            if scope["type"] == "websocket":
                await self._websocket(scope, receive, send)
                return
            await self._http(scope, receive, send, headers, request_id, nonce, path, status_holder)
        finally:
            reset_context(token)
            if self.access_log and scope["type"] == "http":
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=path,
                    status=status_holder["status"],
                    ms=round((time.perf_counter() - started) * 1000, 3),
                    request_id=request_id,
                    client_ip=ctx.client_ip,
                )

    async def _http(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        request_id: str,
        nonce: str,
        path: str,
        status_holder: dict[str, int],
    ) -> None:
        extra_headers = [
            (b"x-request-id", request_id.encode()),
            (b"content-security-policy", _csp(nonce, path).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"permissions-policy", PERMISSIONS_POLICY.encode()),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"cross-origin-resource-policy", b"same-origin"),
        ]
        if self.hsts:
            extra_headers.append(
                (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
            )
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder["status"] = message["status"]
                raw = list(message.get("headers") or [])
                names = {name.lower() for name, _ in raw}
                raw.extend(h for h in extra_headers if h[0] not in names)
                if b"cache-control" not in names:
                    raw.append((b"cache-control", b"no-store"))
                message = {**message, "headers": raw}
            await send(message)

        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_body_bytes
            except ValueError:
                too_large = True
            if too_large:
                await self._problem(
                    scope,
                    receive,
                    send_with_headers,
                    413,
                    "payload-too-large",
                    "Request body too large",
                    f"The body may be at most {self.max_body_bytes} bytes.",
                )
                return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            if not response_started:
                await self._problem(
                    scope,
                    receive,
                    send_with_headers,
                    413,
                    "payload-too-large",
                    "Request body too large",
                    f"The body may be at most {self.max_body_bytes} bytes.",
                )
        except Exception:  # noqa: BLE001 - the last resort: anything becomes an opaque 500
            get_logger("rampart.error").error("unhandled exception", path=path, exc_info=True)
            if not response_started:
                await self._problem(
                    scope,
                    receive,
                    send_with_headers,
                    500,
                    "internal",
                    "Internal error",
                    "Something went wrong on our side. Quote the request id to support.",
                )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The body limit for WebSocket messages: one too large closes the socket with 1009.

        The server has already buffered the frame (bounded by its own `ws_max_size`), but the
        application never sees it, so a stream handler cannot be made to parse megabytes.
        """
        closed = False

        async def send_unless_closed(message: Message) -> None:
            if closed and message["type"] in ("websocket.send", "websocket.close"):
                return
            await send(message)

        async def limited_receive() -> Message:
            nonlocal closed
            message = await receive()
            if message["type"] == "websocket.receive" and not closed:
                data = message.get("bytes")
                if data is None:
                    data = message.get("text") or ""
                # A character is at most 4 bytes in UTF-8; count exactly only when it may matter.
                size = len(data)
                if isinstance(data, str) and size * 4 > self.max_body_bytes:
                    size = len(data.encode("utf-8"))
                if size > self.max_body_bytes:
                    closed = True
                    await send({"type": "websocket.close", "code": WS_MESSAGE_TOO_BIG})
                    return {"type": "websocket.disconnect", "code": WS_MESSAGE_TOO_BIG}
            return message

        await self.app(scope, limited_receive, send_unless_closed)

    @staticmethod
    async def _problem(
        scope: Scope, receive: Receive, send: Any, status: int, code: str, title: str, detail: str
    ) -> None:
        body = problem_body(status, code, title, detail, scope.get("path"))
        response = negotiated_problem(Request(scope, receive), status, body, None)
        await response(scope, receive, send)

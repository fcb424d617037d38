"""The HTTP edge: problem+json errors, security headers, request ids, body limits, health."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from pydantic import BaseModel

from rampart.bootstrap import Container
from rampart.platform.http.access import UndeclaredAccessError, check_routes_declare_access, public
from rampart.web.app import create_app

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def assert_security_headers(response) -> None:  # type: ignore[no-untyped-def]
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "'nonce-" in csp
    assert "object-src 'none'" in csp
    assert "publickey-credentials-get=(self)" in response.headers["permissions-policy"]


def test_unknown_path_is_a_problem_with_security_headers(client: TestClient) -> None:
    response = client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:rampart:problem:not-found"
    assert body["status"] == 404
    assert body["instance"] == "/no/such/thing"
    assert body["request_id"] == response.headers["x-request-id"]
    assert_security_headers(response)


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    assert_security_headers(ready)


def test_docs_are_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    # (Deliberate change, #16 item 5: Swagger UI 5 is vendored under /static and started by a
    # file, so the page has no inline script to carry the nonce; tests/web/test_api_docs.py.)
    assert "<script>" not in page.text
    assert client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "Rampart"


def test_each_response_gets_a_fresh_csp_nonce(client: TestClient) -> None:
    first = client.get("/healthz").headers["content-security-policy"]
    second = client.get("/healthz").headers["content-security-policy"]
    assert first != second


def test_request_id_is_echoed_when_well_formed_and_replaced_otherwise(client: TestClient) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    injected = client.get("/healthz", headers={"X-Request-ID": "bad id\r\nSet-Cookie: x"})
    assert injected.headers["x-request-id"] != "bad id"
    assert "set-cookie" not in injected.headers


def test_oversized_body_is_refused_before_it_is_read(
    client: TestClient, container: Container
) -> None:
    limit = container.settings.max_body_bytes
    response = client.post("/healthz", content=b"x" * (limit + 1))
    assert response.status_code == 413
    assert response.json()["type"] == "urn:rampart:problem:payload-too-large"
    assert_security_headers(response)


def test_streamed_oversized_body_is_cut_off(client: TestClient, container: Container) -> None:
    limit = container.settings.max_body_bytes

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(limit // 65536 + 2):
            yield b"y" * 65536

    response = client.post("/openapi.json", content=chunks())
    assert response.status_code in (405, 413)


def test_crash_is_an_opaque_problem(container: Container) -> None:
    app = create_app(container)
    router = APIRouter(dependencies=[Depends(public)])

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("SELECT secret FROM users WHERE password='hunter2'")

    app.include_router(router)
    with TestClient(app) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["type"] == "urn:rampart:problem:internal"
    assert "SELECT" not in response.text
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


class Body(BaseModel):
    password: str
    amount: int


def test_validation_errors_never_echo_the_input(container: Container) -> None:
    # (Body used to be a local class: FastAPI could not resolve it and took `body` for a missing
    # query parameter, so the 422 never looked at the submitted values at all.)
    app = create_app(container)
    router = APIRouter(dependencies=[Depends(public)])

    @router.post("/echo")
    def echo(body: Body) -> dict[str, int]:
        return {"amount": body.amount}

    app.include_router(router)
    with TestClient(app) as client:
        response = client.post("/echo", json={"password": "hunter2-secret", "amount": "lots"})
    assert response.status_code == 422
    assert response.json()["type"] == "urn:rampart:problem:validation"
    assert "hunter2-secret" not in response.text
    assert "lots" not in response.text
    assert [e["loc"] for e in response.json()["errors"]] == [["body", "amount"]]


def test_a_route_without_an_access_declaration_stops_the_app() -> None:
    app = FastAPI()

    @app.get("/forgotten")
    def forgotten() -> None:
        return None

    with pytest.raises(UndeclaredAccessError) as caught:
        check_routes_declare_access(app)
    assert "GET /forgotten" in caught.value.routes


def test_routes_of_included_routers_are_checked_too() -> None:
    app = FastAPI()
    declared = APIRouter(dependencies=[Depends(public)])
    forgotten = APIRouter()

    @declared.get("/fine/{item_id}")
    def fine(item_id: str) -> None:
        return None

    @forgotten.get("/forgotten-in-a-router")
    def also_forgotten() -> None:
        return None

    app.include_router(declared, prefix="/v1")
    app.include_router(forgotten)
    with pytest.raises(UndeclaredAccessError) as caught:
        check_routes_declare_access(app)
    assert caught.value.routes == ["GET /forgotten-in-a-router"]


def test_every_route_of_the_real_app_declares_its_access(app: FastAPI) -> None:
    from rampart.platform.http.access import route_table

    table = route_table(app)
    assert len(table) > 10
    assert all(declarations for _, _, declarations in table)
    paths = {path for _, path, _ in table}
    assert "/healthz" in paths


# --- review findings ----------------------------------------------------------------------------
class Payload(BaseModel):
    text: str


def _public_app(container: Container):  # type: ignore[no-untyped-def]
    # Models and annotations at module level: `from __future__ import annotations` makes them
    # strings that FastAPI resolves in the module's globals, never in a function's locals.
    app = create_app(container)
    router = APIRouter(dependencies=[Depends(public)])

    @router.post("/echo-json")
    def echo_json(body: Payload) -> dict[str, int]:
        return {"length": len(body.text)}

    @router.websocket("/echo-ws")
    async def echo_ws(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            await websocket.send_text(str(len(message.get("text") or message.get("bytes") or "")))

    app.include_router(router)
    return app


def test_a_chunked_oversized_json_body_is_a_413_not_a_400(container: Container) -> None:
    # No Content-Length: the limit trips inside FastAPI's body parsing, which used to turn it into
    # "400 There was an error parsing the body".
    limit = container.settings.max_body_bytes

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"text": "'
        for _ in range(limit // 65536 + 2):
            yield b"y" * 65536
        yield b'"}'

    with TestClient(_public_app(container)) as client:
        response = client.post(
            "/echo-json", content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["type"] == "urn:rampart:problem:payload-too-large"
    assert_security_headers(response)


def test_websocket_messages_are_held_to_the_body_limit(container: Container) -> None:
    from starlette.websockets import WebSocketDisconnect

    limit = container.settings.max_body_bytes
    with TestClient(_public_app(container)) as client, client.websocket_connect("/echo-ws") as ws:
        ws.send_text("small")
        assert ws.receive_text() == "5"
        ws.send_bytes(b"z" * (limit + 1))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1009


def test_a_request_id_with_a_trailing_newline_is_replaced() -> None:
    # `$` matches before a final newline: "abc\n" passed the check and was echoed in a header.
    import asyncio

    from rampart.platform.http.middleware import EdgeMiddleware

    async def ok(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, object]] = []

    async def send(message):  # type: ignore[no-untyped-def]
        sent.append(message)

    async def receive():  # type: ignore[no-untyped-def]
        return {"type": "http.request", "body": b"", "more_body": False}

    edge = EdgeMiddleware(ok, max_body_bytes=1024, access_log=False)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(b"x-request-id", b"abc\n")],
        "client": ("203.0.113.9", 5000),
    }
    asyncio.run(edge(scope, receive, send))
    echoed = dict(sent[0]["headers"])[b"x-request-id"]  # type: ignore[call-overload]
    assert b"\n" not in echoed
    assert echoed != b"abc\n"


def test_x_forwarded_for_split_over_several_header_lines_is_read_as_one_list() -> None:
    # RFC 9110: repeated fields are one comma-separated list, in order. Proxies that each add a
    # line of their own (HAProxy's `option forwardfor`) leave the client two lines from the end;
    # reading the last line alone saw only trusted hops and took every client for the proxy.
    from rampart.platform.http.middleware import EdgeMiddleware

    async def never(scope, receive, send):  # type: ignore[no-untyped-def]
        raise AssertionError

    edge = EdgeMiddleware(never, max_body_bytes=1024, trusted_proxies=["10.0.0.0/8"])
    headers = [
        (b"x-forwarded-for", b"198.51.100.7"),  # the client's own claim
        (b"x-forwarded-for", b"203.0.113.5"),  # added by the outer proxy 10.0.0.9
        (b"x-forwarded-for", b"10.0.0.9"),  # added by the inner proxy 10.0.0.1
    ]
    scope = {"client": ("10.0.0.1", 1), "headers": headers}
    assert edge.client_ip(scope, dict(headers)) == "203.0.113.5"

"""The HTTP edge: problem+json errors, security headers, request ids, body limits, health."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

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
    nonce = page.headers["content-security-policy"].split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in page.text
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200
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


def test_validation_errors_never_echo_the_input(container: Container) -> None:
    from pydantic import BaseModel

    class Body(BaseModel):
        password: str
        amount: int

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

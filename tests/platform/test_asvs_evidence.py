"""Behaviours docs/security/asvs.md claims as met, asserted through the application.

Each test here backs one or more rows of the ASVS mapping that were first verified by hand
(requests to a running server, reading the code): security headers, CORS, methods, caching,
the WebSocket origin check, redirects, static files, content types and password fields.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.websockets import WebSocketDisconnect
from structlog.testing import capture_logs
from tests.identity.support import PASSWORD, bearer, login, verified_user

from rampart.bootstrap import Container
from rampart.identity.authn import SESSION_COOKIE
from rampart.identity.domain import new_token
from rampart.platform.http.middleware import EdgeMiddleware
from rampart.web.pages.mfa import _safe_next

FOREIGN_ORIGIN = "https://evil.example"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def _page_sign_in(client: TestClient, email: str) -> str:
    """Sign in on the pages as a browser does; the session cookie's value."""
    page = client.get("/login")
    match = CSRF_FIELD.search(page.text)
    assert match, "the sign-in page has no CSRF field"
    sent = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": match.group(1)},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    return str(client.cookies[SESSION_COOKIE])


# --- V3.4.1: HSTS on every response of the production edge ----------------------------------
def _edge(*, hsts: bool) -> TestClient:
    """The edge middleware alone, over a tiny app; `/broken` raises straight into the edge."""

    async def ok(request):  # type: ignore[no-untyped-def]
        return JSONResponse({"ok": True})

    routes = Starlette(routes=[Route("/ok", ok, methods=["GET", "POST"])])

    async def inner(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and scope["path"] == "/broken":
            raise RuntimeError("boom: secret detail")
        await routes(scope, receive, send)

    edge = EdgeMiddleware(inner, max_body_bytes=1024, hsts=hsts, access_log=False)
    return TestClient(edge, base_url="https://testserver", raise_server_exceptions=False)


def test_production_edge_sends_hsts_on_every_response_errors_included() -> None:
    client = _edge(hsts=True)
    for path, status in (("/ok", 200), ("/missing", 404), ("/broken", 500)):
        response = client.get(path)
        assert response.status_code == status
        assert (
            response.headers["strict-transport-security"] == "max-age=63072000; includeSubDomains"
        )
    too_large = client.post("/ok", content=b"x" * 2048)
    assert too_large.status_code == 413
    assert "strict-transport-security" in too_large.headers


def test_the_application_turns_hsts_on_only_in_the_production_profile(
    client: TestClient, container: Container
) -> None:
    # The `client` fixture runs the dev profile: no HSTS, which would pin a developer's localhost.
    assert container.settings.profile == "dev"
    assert "strict-transport-security" not in client.get("/healthz").headers
    edge = client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(edge, EdgeMiddleware):
        edge = edge.app
    assert edge.hsts is False


# --- V3.4.2: no CORS for a foreign origin ---------------------------------------------------
def test_a_foreign_origin_gets_no_cors_headers_and_its_preflight_is_refused(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "cors@example.com")
    token = login(client, "cors@example.com")["access_token"]
    simple = client.get("/v1/me", headers={"Origin": FOREIGN_ORIGIN, **bearer(token)})
    assert simple.status_code == 200
    assert not [h for h in simple.headers if h.lower().startswith("access-control-")]
    preflight = client.options(
        "/v1/me",
        headers={
            "Origin": FOREIGN_ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 405
    assert not [h for h in preflight.headers if h.lower().startswith("access-control-")]


# --- V13.4.4: TRACE and unknown methods -----------------------------------------------------
@pytest.mark.parametrize("method", ["TRACE", "PROPFIND", "FOO"])
def test_trace_and_unknown_methods_are_refused(client: TestClient, method: str) -> None:
    for path in ("/healthz", "/v1/me", "/login"):
        response = client.request(method, path, headers={"X-Secret-Probe": "echo-me"})
        assert response.status_code == 405, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
        assert "echo-me" not in response.text


# --- V14.2.2, V14.3.2: account data is never cached -----------------------------------------
def test_responses_with_account_data_are_marked_no_store(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "cache@example.com")
    token = login(client, "cache@example.com")["access_token"]
    me = client.get("/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["email"] == "cache@example.com"
    assert me.headers["cache-control"] == "no-store"
    _page_sign_in(client, "cache@example.com")
    security = client.get("/security")
    assert security.status_code == 200
    assert security.headers["cache-control"] == "no-store"
    refused = client.get("/v1/me", headers=bearer("not-a-token"))
    assert refused.status_code == 401
    assert refused.headers["cache-control"] == "no-store"


# --- V4.4.2: the WebSocket handshake checks Origin ------------------------------------------
def test_a_stream_handshake_from_a_foreign_origin_is_refused(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "ws@example.com")
    secret = _page_sign_in(client, "ws@example.com")
    cookie = f"{SESSION_COOKIE}={secret}"
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect(
            "/v1/stream", headers={"cookie": cookie, "origin": FOREIGN_ORIGIN}
        ) as ws,
    ):
        ws.receive_json()
    with client.websocket_connect(
        "/v1/stream", headers={"cookie": cookie, "origin": "https://testserver"}
    ) as ws:
        assert ws.receive_json()["type"] == "welcome"


# --- V3.7.2: redirects after step-up stay on our own paths ----------------------------------
@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/security",
        "//evil.example/security",
        "/security//evil.example",
        "/security\\evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "",
        None,
    ],
)
def test_step_up_next_never_leads_off_site(target: str | None) -> None:
    assert _safe_next(target) == "/security/mfa"


def test_step_up_next_keeps_own_paths() -> None:
    assert _safe_next("/trade") == "/trade"
    assert _safe_next("/withdraw?amount=5") == "/withdraw?amount=5"


def test_the_step_up_page_does_not_carry_a_foreign_next(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "next@example.com")
    _page_sign_in(client, "next@example.com")
    page = client.get("/security/step-up", params={"next": "//evil.example/"})
    assert page.status_code == 200
    assert "evil.example" not in page.text


# --- V13.4.1, V13.4.3: static files neither list nor escape their directory -----------------
@pytest.mark.parametrize(
    "path",
    [
        "/static/",
        "/static",
        "/static/../../config.py",
        "/static/%2e%2e/%2e%2e/config.py",
        "/static/..%2f..%2fconfig.py",
        "/.git/config",
        "/.git/HEAD",
    ],
)
def test_static_files_neither_list_nor_escape_their_directory(
    client: TestClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 404, path
    assert "Settings" not in response.text
    assert "[core]" not in response.text


# --- V4.1.1: Content-Type matches the body --------------------------------------------------
def test_every_body_declares_its_content_type(client: TestClient) -> None:
    assert client.get("/login").headers["content-type"] == "text/html; charset=utf-8"
    assert client.get("/healthz").headers["content-type"] == "application/json"
    problem = client.get("/v1/me")
    assert problem.status_code == 401
    assert problem.headers["content-type"] == "application/problem+json"
    assert (
        client.get("/static/market.js")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )


# --- V6.2.6, V6.2.7: password fields are masked and password managers welcome --------------
@pytest.mark.parametrize("path", ["/login", "/signup"])
def test_password_fields_are_masked_and_allow_paste_and_managers(
    client: TestClient, path: str
) -> None:
    page = client.get(path)
    assert page.status_code == 200
    fields = re.findall(r"<input[^>]*name=\"password\"[^>]*>", page.text)
    assert fields
    for field in fields:
        assert 'type="password"' in field
        assert 'autocomplete="off"' not in field
        assert re.search(r'autocomplete="(current|new)-password"', field)
    assert not re.search(r"onpaste|oncopy|oncut", page.text, re.IGNORECASE)


# --- V7.4.4: sign-out on every signed-in page -----------------------------------------------
def test_every_signed_in_page_offers_sign_out(client: TestClient, container: Container) -> None:
    verified_user(client, container, "out@example.com")
    _page_sign_in(client, "out@example.com")
    for path in ("/security", "/security/mfa", "/market"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert re.search(r'<form method="post" action="/logout"', page.text), path


# --- V7.2.2, V7.2.3, V11.5.1: session tokens are fresh and carry 256 bits -------------------
def test_session_tokens_are_fresh_256_bit_urlsafe_values(
    client: TestClient, container: Container
) -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", t) for t in tokens)
    verified_user(client, container, "fresh@example.com")
    first = _page_sign_in(client, "fresh@example.com")
    client.cookies.clear()
    second = _page_sign_in(client, "fresh@example.com")
    assert first != second
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", first)


# --- V9.2.2: only access tokens are accepted as bearer tokens -------------------------------
def test_a_refresh_token_is_not_accepted_as_an_access_token(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "typ@example.com")
    tokens = login(client, "typ@example.com")
    assert client.get("/v1/me", headers=bearer(tokens["access_token"])).status_code == 200
    refused = client.get("/v1/me", headers=bearer(tokens["refresh_token"]))
    assert refused.status_code == 401
    assert refused.json()["type"] == "urn:rampart:problem:invalid-token"


# --- Code-level claims: what the source never does ------------------------------------------
SOURCE = Path(__file__).resolve().parents[2] / "src" / "rampart"


def _python_sources() -> list[tuple[str, str]]:
    return [
        (str(p.relative_to(SOURCE)), p.read_text(encoding="utf-8")) for p in SOURCE.rglob("*.py")
    ]


@pytest.mark.parametrize(
    ("claim", "forbidden"),
    [
        # V1.3.2: no dynamic code execution.
        ("no-eval", r"(?<![\w.])(eval|exec|compile)\(|__import__\(|importlib\.import_module\("),
        # V1.5.2: no deserialiser that builds arbitrary objects from untrusted bytes.
        ("no-unsafe-deserialisation", r"\bimport (pickle|marshal|shelve|dill)\b|yaml\.load\("),
        # V1.2.5: OS commands only as argument lists, never through a shell.
        ("no-shell", r"shell\s*=\s*True|os\.system\(|os\.popen\("),
        # V11.3.1: no ECB, no CBC, no PKCS#1 v1.5.
        ("no-weak-modes", r"modes\.(ECB|CBC)\b|PKCS1v15"),
        # V15.3.2: outbound HTTP does not follow redirects.
        ("no-redirect-following", r"follow_redirects\s*=\s*True"),
    ],
)
def test_the_source_never_uses(claim: str, forbidden: str) -> None:
    pattern = re.compile(forbidden)
    sources = _python_sources()
    assert len(sources) > 100, "the scan must see the package's modules"
    offenders = [name for name, text in sources if pattern.search(text)]
    assert not offenders, f"{claim}: {offenders}"


# --- V16.3.4: an unexpected error is logged, and reaches the caller only as an opaque 500 ---
def test_an_unexpected_error_is_logged_and_the_caller_sees_only_its_request_id() -> None:
    client = _edge(hsts=False)
    with capture_logs() as logs:
        response = client.get("/broken")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret detail" not in response.text
    assert "RuntimeError" not in response.text
    assert response.json()["request_id"] == response.headers["x-request-id"]
    logged = [e for e in logs if e["event"] == "unhandled exception"]
    assert len(logged) == 1
    assert logged[0]["path"] == "/broken"
    assert logged[0]["log_level"] == "error"


# --- V3.5.3: state changes are never a GET --------------------------------------------------
@pytest.mark.parametrize("path", ["/logout", "/v1/auth/login", "/v1/auth/register"])
def test_state_changing_endpoints_refuse_get(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 405


# --- V7.6.2: a session is created only by an explicit sign-in -------------------------------
def test_opening_pages_creates_no_session(client: TestClient, container: Container) -> None:
    verified_user(client, container, "consent@example.com")
    for path in ("/", "/login", "/signup", "/market", "/healthz"):
        response = client.get(path)
        assert SESSION_COOKIE not in response.headers.get("set-cookie", ""), path
    assert SESSION_COOKIE not in client.cookies
    _page_sign_in(client, "consent@example.com")
    assert SESSION_COOKIE in client.cookies


# --- V15.3.1, V8.2.3: the account view returns chosen fields only ---------------------------
def test_the_account_view_returns_only_its_chosen_fields(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "fields@example.com")
    token = login(client, "fields@example.com")["access_token"]
    me = client.get("/v1/me", headers=bearer(token))
    assert me.status_code == 200
    assert set(me.json()) == {
        "id",
        "email",
        "email_verified",
        "roles",
        "permissions",
        "created_at",
    }
    assert "password" not in me.text.lower()
    assert "argon2" not in me.text


# --- V1.2.4: SQL metacharacters are data ----------------------------------------------------
@pytest.mark.parametrize(
    "email",
    ["x' OR '1'='1@example.com", 'a"; DROP TABLE users; --@example.com', "%@example.com"],
)
def test_sql_metacharacters_in_sign_in_are_data_not_code(
    client: TestClient, container: Container, email: str
) -> None:
    verified_user(client, container, "victim@example.com")
    response = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code in (401, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    # The table is still there and the real account still signs in.
    assert login(client, "victim@example.com")["access_token"]

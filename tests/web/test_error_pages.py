"""Errors in a person's browser are pages in the site's layout; API clients keep problem+json.

The same error, negotiated on `Accept` and the path: a browser navigation (text/html first) to a
page gets a styled page with the words, the request id and a way back; an API client, a `fetch()`
call (`*/*`) or any request under the API's paths gets the RFC 9457 problem.
"""

from __future__ import annotations

import re

import pytest
from fastapi import APIRouter, Depends, Form
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from rampart.bootstrap import Container
from rampart.kernel.errors import UnauthorizedError
from rampart.kernel.ids import new_id
from rampart.platform.http.access import public
from rampart.platform.http.problems import use_problem_pages, wants_page
from rampart.web.app import create_app

#: What Chromium and Firefox send when a person follows a link or submits a form.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
API = {"Accept": "application/json"}


def assert_error_page(response, status: int, heading: str) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    text = str(response.text)
    # The site's layout (stylesheet, header, a way back), not a bare message.
    assert '<link rel="stylesheet" href="/static/rampart.css">' in text
    assert '<a class="brand" href="/">Rampart</a>' in text
    assert f"<h1>{heading}</h1>" in text
    assert '<a href="/">Back to the home page</a>' in text
    assert f"<code>{response.headers['x-request-id']}</code>" in text
    assert "content-security-policy" in response.headers
    return text


def assert_problem(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"urn:rampart:problem:{code}"


def test_a_missing_page_is_a_page_for_a_browser_and_a_problem_for_the_api(
    client: TestClient,
) -> None:
    assert_error_page(client.get("/no/such/page", headers=BROWSER), 404, "Page not found")
    assert_problem(client.get("/no/such/page", headers=API), 404, "not-found")
    # fetch() and curl send */*: they asked for no page.
    assert_problem(client.get("/no/such/page"), 404, "not-found")
    # Under the API's paths a browser gets the problem too: it is what the API answers.
    assert_problem(client.get("/v1/no-such-thing", headers=BROWSER), 404, "not-found")
    key = f"/api/v1/apikeys/{new_id()}"
    assert_problem(client.get(key, headers=BROWSER), 401, "unauthorized")


def test_a_refused_form_is_a_page_that_says_what_to_do(
    client: TestClient, container: Container
) -> None:
    client.get("/login")
    refused = client.post(
        "/login",
        headers=BROWSER,
        data={"email": "a@example.com", "password": "whatever it is", "csrf_token": "forged" * 6},
    )
    text = assert_error_page(refused, 403, "That is not allowed")
    assert "Open the page again and resend it." in text
    assert '<a href="/login">Sign in</a>' in text
    api = client.post(
        "/login",
        headers=API,
        data={"email": "a@example.com", "password": "whatever it is", "csrf_token": ""},
    )
    assert_problem(api, 403, "csrf-failed")


def test_an_invalid_form_and_too_many_attempts_are_pages(client: TestClient) -> None:
    # A form post missing its fields: 422 in words, nothing echoed.
    invalid = client.post("/forgot-password", headers=BROWSER, data={})
    assert_error_page(invalid, 422, "Something in the form needs fixing")

    page = client.get("/forgot-password")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    form = {"email": "nobody@example.com", "csrf_token": csrf.group(1)}
    for _ in range(20):
        answer = client.post("/forgot-password", headers=BROWSER, data=form)
        if answer.status_code != 200:
            break
    else:
        raise AssertionError("the reset form was never rate limited")
    text = assert_error_page(answer, 429, "Too many attempts")
    assert int(answer.headers["retry-after"]) >= 1
    assert "ratelimit-policy" in answer.headers
    assert "retry in" in text
    assert "nobody@example.com" not in text
    assert_problem(client.post("/forgot-password", headers=API, data=form), 429, "rate-limited")


def test_unauthorised_crash_and_oversized_requests_are_pages(container: Container) -> None:
    app = create_app(container)
    router = APIRouter(dependencies=[Depends(public)])

    @router.get("/probe/members-only")
    def members_only() -> None:
        raise UnauthorizedError("Sign in to see this.")

    @router.get("/probe/boom")
    def boom() -> None:
        raise RuntimeError("SELECT secret FROM users WHERE password='hunter2'")

    @router.post("/probe/upload")
    def upload(note: str = Form("")) -> None:
        return None

    app.include_router(router)
    with TestClient(app, base_url="https://testserver") as client:
        unauthorised = client.get("/probe/members-only", headers=BROWSER)
        text = assert_error_page(unauthorised, 401, "Please sign in")
        assert '<a href="/login">Sign in</a>' in text
        assert_problem(client.get("/probe/members-only", headers=API), 401, "unauthorized")

        crashed = client.get("/probe/boom", headers=BROWSER)
        text = assert_error_page(crashed, 500, "Something went wrong on our side")
        for leak in ("SELECT", "hunter2", "Traceback", "RuntimeError"):
            assert leak not in text
        assert_problem(client.get("/probe/boom", headers=API), 500, "internal")

        huge = "x" * (container.settings.max_body_bytes + 1)
        too_large = client.post("/probe/upload", headers=BROWSER, data={"note": huge})
        assert_error_page(too_large, 413, "That was too large to send")
        assert_problem(
            client.post("/probe/upload", headers=API, data={"note": huge}),
            413,
            "payload-too-large",
        )


def test_a_broken_error_page_falls_back_to_the_problem(container: Container) -> None:
    app = create_app(container)

    def broken(_request: object, _problem: object) -> object:
        raise RuntimeError("template missing")

    use_problem_pages(app, broken)  # type: ignore[arg-type]
    with TestClient(app, base_url="https://testserver") as client:
        assert_problem(client.get("/no/such/page", headers=BROWSER), 404, "not-found")


@pytest.mark.parametrize(
    ("path", "accept", "page"),
    [
        ("/login", BROWSER["Accept"], True),
        ("/login", "text/html", True),
        ("/login", "*/*", False),
        ("/login", "", False),
        ("/login", None, False),
        ("/login", "application/json", False),
        ("/login", "application/problem+json, text/html;q=0.5", False),
        ("/login", "text/html;q=0.9, application/json;q=0.8", True),
        ("/login", "text/html;q=0", False),
        ("/login", "text/html;q=oops", False),
        ("/v1/orders", "text/html", False),
        ("/api/v1/apikeys", "text/html", False),
        ("/audit/entries", "text/html", False),
        ("/.well-known/jwks.json", "text/html", False),
        ("/openapi.json", "text/html", False),
        ("/healthz", "text/html", False),
    ],
)
def test_who_gets_a_page(path: str, accept: str | None, page: bool) -> None:
    assert wants_page(path, accept) is page


@given(path=st.text(max_size=40).map(lambda s: "/" + s), accept=st.text(max_size=300))
def test_any_accept_header_is_read_without_error(path: str, accept: str) -> None:
    assert wants_page(path, accept) in (True, False)

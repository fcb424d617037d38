"""Refusals that show someone working against a control are logged as security events (ASVS
16.3.3): a request without its anti-forgery token, a rate limiter's 429, a bearer token that is
not ours, input that fails validation. Each is one `security event` line on `rampart.security`
carrying its kind, the path, the status and the client; none carries what was submitted.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from structlog.testing import capture_logs
from tests.identity.support import PASSWORD, bearer, verified_user

from rampart.bootstrap import Container
from rampart.identity.authn import SESSION_COOKIE

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def _events(logs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "security event" and e["security_event"] == kind]


def _sign_in_on_the_page(client: TestClient, email: str) -> str:
    page = client.get("/login")
    match = CSRF_FIELD.search(page.text)
    assert match
    sent = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": match.group(1)},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    return str(client.cookies[SESSION_COOKIE])


def test_a_signed_in_form_without_its_csrf_token_is_a_security_event(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "csrf-event@example.com")
    secret = _sign_in_on_the_page(client, "csrf-event@example.com")
    with capture_logs() as logs:
        forged = client.post("/logout", data={"csrf_token": "forged-by-another-site"})
    assert forged.status_code == 403
    (event,) = _events(logs, "csrf-failed")
    assert event["log_level"] == "warning"
    assert event["path"] == "/logout"
    assert event["status"] == 403
    assert event["code"] == "csrf-failed"
    assert event["client_ip"] == "testclient"
    assert "forged-by-another-site" not in repr(logs)
    assert secret not in repr(logs)


def test_a_public_form_without_its_csrf_token_is_a_security_event(client: TestClient) -> None:
    with capture_logs() as logs:
        refused = client.post(
            "/login",
            data={"email": "a@example.com", "password": "whatever it is", "csrf_token": ""},
        )
    assert refused.status_code == 403
    (event,) = _events(logs, "csrf-failed")
    assert event["path"] == "/login"
    assert "whatever it is" not in repr(logs)


def test_a_rate_limit_refusal_is_a_security_event(client: TestClient) -> None:
    page = client.get("/forgot-password")
    match = CSRF_FIELD.search(page.text)
    assert match
    form = {"email": "nobody@example.com", "csrf_token": match.group(1)}
    with capture_logs() as logs:
        for _ in range(20):
            answer = client.post("/forgot-password", data=form)
            if answer.status_code != 200:
                break
    assert answer.status_code == 429
    (event,) = _events(logs, "rate-limited")
    assert event["log_level"] == "warning"
    assert event["path"] == "/forgot-password"
    assert event["status"] == 429
    assert "nobody@example.com" not in repr(logs)


def test_a_throttled_sign_in_page_is_a_security_event(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "throttled@example.com")
    page = client.get("/login")
    match = CSRF_FIELD.search(page.text)
    assert match
    form = {"email": "throttled@example.com", "password": "wrong", "csrf_token": match.group(1)}
    with capture_logs() as logs:
        for _ in range(30):
            answer = client.post("/login", data=form)
            if answer.status_code == 429:
                break
    assert answer.status_code == 429
    events = _events(logs, "rate-limited")
    assert events
    assert all(e["path"] == "/login" and e["status"] == 429 for e in events)
    assert "wrong" not in {str(v) for e in events for v in e.values()}


def test_a_forged_bearer_token_is_a_security_event(client: TestClient) -> None:
    forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."
    with capture_logs() as logs:
        refused = client.get("/v1/me", headers=bearer(forged))
    assert refused.status_code == 401
    (event,) = _events(logs, "invalid-token")
    assert event["path"] == "/v1/me"
    assert event["status"] == 401
    assert forged not in repr(logs)


def test_input_refused_by_validation_is_a_security_event_naming_fields_not_values(
    client: TestClient,
) -> None:
    with capture_logs() as logs:
        refused = client.post(
            "/v1/auth/login",
            json={"email": "x@example.com", "password": "p" * 5000, "smuggled": "payload-value"},
        )
    assert refused.status_code == 422
    (event,) = _events(logs, "input-refused")
    assert event["log_level"] == "info"
    assert event["status"] == 422
    assert "body.password" in event["fields"]
    assert "payload-value" not in repr(logs)
    assert "p" * 5000 not in repr(logs)


def test_an_ordinary_request_logs_no_security_event(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "calm@example.com")
    with capture_logs() as logs:
        _sign_in_on_the_page(client, "calm@example.com")
        assert client.get("/security").status_code == 200
    assert not [e for e in logs if e["event"] == "security event"]

"""Input that a driver or a serialiser cannot take is refused as the client's error, never a 500.

PostgreSQL refuses a NUL byte in a text value (the driver raises), orjson refuses a lone surrogate
and an integer past 64 bits. Every id and every text field is typed (`rampart.platform.http.
inputs`), WebAuthn payloads are strict models, and a driver's data error that still gets through
is a 422 problem (`rampart.platform.http.problems`). These tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError, IntegrityError
from tests.support.signin import signed_in

from rampart.bootstrap import Container
from rampart.kernel.ids import new_id
from rampart.platform.http.access import public

PROBLEM = "application/problem+json"
NUL = "\x00"


def _refused_as_input(response: Any) -> None:
    assert response.status_code in (404, 405, 422), (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM
    assert "SELECT" not in response.text
    assert "psycopg" not in response.text.lower()


@pytest.fixture
def staff(client: TestClient, container: Container) -> dict[str, str]:
    """Signed in with every role, trader's and staff's: access is never the answer."""
    return signed_in(client, container, "everyone")


def _id_operations(client: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every operation with an id in its path, from the app's own schema."""
    spec = client.app.openapi()  # type: ignore[attr-defined]
    found = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            ids = [
                p["name"]
                for p in operation.get("parameters", [])
                if p["in"] == "path" and "7[0-9a-f]{3}" in p["schema"].get("pattern", "")
            ]
            if ids:
                found.append((method.upper(), path))
    return found


def test_a_nul_byte_in_any_path_id_is_refused_before_the_database(
    client: TestClient, staff: dict[str, str]
) -> None:
    operations = _id_operations(client)
    assert len(operations) >= 15  # orders, keys, sessions, devices, halts, grants, factors ...
    for method, template in operations:
        path = template
        for name in ("order_id", "key_id", "session_id", "device_id", "halt_id", "user_id"):
            path = path.replace("{" + name + "}", new_id()[:-1] + "%00")
        for name in ("authenticator_id", "challenge_id"):
            path = path.replace("{" + name + "}", "%00" + new_id()[1:])
        path = path.replace("{role}", "TRADER")
        response = client.request(method, path, headers=staff, json={})
        _refused_as_input(response)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/auth/login", {"email": f"a{NUL}@example.com", "password": "x" * 12}),
        ("POST", "/v1/auth/register", {"email": "a@example.com", "password": f"pass{NUL}word1"}),
        ("POST", "/api/v1/apikeys", {"scopes": ["read"], "label": f"bot{NUL}"}),
        ("POST", "/v1/orders", {"symbol": "ACME", "side": "buy", "quantity": "1",
                                "limit_price": "1", "client_order_id": f"c{NUL}1"}),
        ("POST", "/v1/risk/halts", {"scope": "symbol", "target": f"AC{NUL}ME", "reason": "r"}),
        ("PUT", "/v1/risk/restricted/ACME", {"reason": f"because{NUL}"}),
        ("PUT", "/api/v1/access/roles/desk", {"permissions": ["market:data"],
                                              "description": f"a{NUL}b"}),
        ("PATCH", f"/v1/mfa/webauthn/{new_id()}", {"name": f"key{NUL}"}),
        ("POST", "/v1/mfa/step-up", {"kind": "totp", "code": f"12{NUL}456"}),
        ("POST", "/v1/auth/login/mfa/challenge", {"pending_token": f"{'p' * 20}{NUL}",
                                                  "kind": "email"}),
        ("POST", "/v1/auth/password/reset", {"token": f"t{NUL}", "password": "y" * 16}),
        ("POST", "/v1/auth/login", {"email": "a@example.com\x1b[31m", "password": "x" * 12}),
    ],
)  # fmt: skip
def test_nul_and_control_characters_in_json_text_are_a_422_problem(
    client: TestClient, staff: dict[str, str], method: str, path: str, body: dict[str, Any]
) -> None:
    response = client.request(method, path, headers=staff, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "urn:rampart:problem:validation"
    assert NUL not in response.text


def test_a_reason_and_a_grant_with_a_nul_byte_never_reach_the_database(
    client: TestClient, container: Container, staff: dict[str, str]
) -> None:
    from tests.access.support import new_account

    user = new_account(container, "TRADER")
    granted = client.post(
        f"/api/v1/access/users/{user}/grants",
        headers=staff,
        json={"role": "SUPPORT", "reason": f"on call{NUL}"},
    )
    assert granted.status_code == 422, granted.text
    with container.db.read() as session:
        assert all(g.role != "SUPPORT" for g in container.access.grants_of(session, user))


_WEBAUTHN_ASSERTION = {
    "id": "AAAA",
    "rawId": "AAAA",
    "type": "public-key",
    "response": {"clientDataJSON": "AAAA", "authenticatorData": "AAAA", "signature": "AAAA"},
}


@pytest.mark.parametrize(
    "credential",
    [
        # A lone surrogate (valid JSON text, not valid UTF-8), where the library would read it.
        '{"id": "\\ud800", "rawId": "AAAA", "type": "public-key", "response": {}}',
        # An integer past 64 bits, in a member the ceremony does not read.
        json.dumps(_WEBAUTHN_ASSERTION)[:-1] + ', "x": ' + str(2**70) + "}",
        # ... and in one it does.
        json.dumps({**_WEBAUTHN_ASSERTION, "id": 2**70}),
    ],
)
def test_a_webauthn_payload_no_serialiser_can_take_is_refused_without_signing_in(
    client: TestClient, credential: str
) -> None:
    body = '{"pending_token": "' + "p" * 32 + '", "kind": "webauthn", "credential": '
    response = client.post(
        "/v1/auth/login/mfa",
        content=body + credential + "}",
        headers={"content-type": "application/json"},
    )
    # Refused as invalid input, or (the unread member dropped) as an unknown pending sign-in.
    assert response.status_code in (401, 422), response.text
    assert response.headers["content-type"] == PROBLEM


def test_a_driver_data_error_is_a_422_problem_that_names_no_sql(
    app: Any, container: Container
) -> None:
    secret = "s3cret-value"

    @app.get("/test/data-error", dependencies=[Depends(public)])
    def data_error() -> None:
        raise DataError(f"SELECT * FROM users WHERE x = '{secret}'", {"x": secret}, Exception(NUL))

    @app.get("/test/integrity-error", dependencies=[Depends(public)])
    def integrity_error() -> None:
        raise IntegrityError("INSERT INTO t VALUES (1)", {}, Exception("duplicate"))

    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        refused = client.get("/test/data-error")
        assert refused.status_code == 422
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["type"] == "urn:rampart:problem:unprocessable-data"
        assert secret not in refused.text
        assert "SELECT" not in refused.text
        # Only input-shaped errors are the client's: a broken invariant is still ours (500).
        broken = client.get("/test/integrity-error")
        assert broken.status_code == 500
        assert "INSERT" not in broken.text


def test_every_text_field_of_every_request_states_its_rule(client: TestClient) -> None:
    """Each string a request carries (path, query, body, at any depth) is an id, an enum, a
    date-time, or a typed text with a pattern: a new bare `str` field fails here."""
    spec = client.app.openapi()  # type: ignore[attr-defined]
    schemas = spec["components"]["schemas"]
    bare: list[str] = []

    def walk(schema: dict[str, Any], where: str, seen: frozenset[str]) -> None:
        ref = schema.get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                walk(schemas[name], f"{where}<{name}>", seen | {name})
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for option in schema.get(key, []):
                walk(option, where, seen)
        rule = {"pattern", "enum", "const", "format"} & schema.keys()
        if schema.get("type") == "string" and not rule:
            bare.append(where)
        for name, sub in schema.get("properties", {}).items():
            walk(sub, f"{where}.{name}", seen)
        for key in ("items", "additionalProperties", "propertyNames"):
            if isinstance(schema.get(key), dict):
                walk(schema[key], f"{where}[{key}]", seen)

    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                walk(parameter["schema"], f"{label} {parameter['name']}", frozenset())
            for media in operation.get("requestBody", {}).get("content", {}).values():
                walk(media.get("schema", {}), f"{label} body", frozenset())
    assert not bare, "\n".join(bare)


def test_a_factor_id_from_a_form_with_a_nul_byte_is_simply_not_found(container: Container) -> None:
    """The security page posts the authenticator id as a form field (not a typed path): the
    service itself takes a non-id for a missing factor, on PostgreSQL too."""
    from tests.access.support import new_account

    from rampart.identity.mfa.domain import FactorNotEnrolledError

    user = new_account(container, "TRADER")
    with container.uow() as uow, pytest.raises(FactorNotEnrolledError):
        container.mfa.remove_authenticator(uow, user, new_id()[:-1] + NUL)

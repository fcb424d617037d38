"""The API against its own contract: schemathesis generates requests for every operation of the
OpenAPI schema and checks each answer: no 5xx, a declared status, the declared content type, a
body that validates against the declared schema.

Run in-process (the app's own schema, a TestClient: no server), on SQLite and PostgreSQL, as the
two principals that reach the most routes: a trader and a member of staff (ADMIN, COMPLIANCE and
SUPPORT), each signed in for real with a password and an authenticator app, stepped up. Bounded:
a fixed number of examples per operation, derandomized (the same cases every run), no shrinking.
The figure (operations, cases, failures) is printed with `-s`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.support.signin import signed_in
from tests.trading.support import seed

from rampart.bootstrap import Container
from rampart.kernel.ids import new_id

pytestmark = pytest.mark.timeout(600)

#: Examples per operation and mode (RAMPART_CONTRACT_EXAMPLES for a longer local run).
EXAMPLES = int(os.environ.get("RAMPART_CONTRACT_EXAMPLES", "15"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: Operations that end the principal's own sign-in: run last, so that the others run signed in.
LAST = ("/v1/auth/logout", "/v1/me/close", "/v1/me/password")


@dataclass
class Tally:
    operations: int = 0
    cases: int = 0
    failures: list[str] = field(default_factory=list)


def _operations(schema: Any) -> Iterator[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: op.path in LAST)
    yield from operations


def _run_operation(
    operation: Any, client: TestClient, auth: dict[str, str], tally: Tally, mode: GenerationMode
) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(strategy)
        kwargs = case.as_transport_kwargs(base_url="https://testserver", headers=auth)
        kwargs.pop("timeout", None)
        if not kwargs.get("cookies"):
            kwargs.pop("cookies", None)
        if "data" in kwargs:
            kwargs["content"] = kwargs.pop("data")
        response = client.request(**kwargs)
        tally.cases += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as failure:
            # Every failure is collected, then reported together at the end.
            lines = [line.strip() for line in str(failure).strip().splitlines() if line.strip()]
            tally.failures.append(
                f"{operation.label} ({mode.value}) -> {response.status_code}: "
                + " | ".join(lines[1:5])
            )

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid: an operation with no parameters and no body.
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.slow
@pytest.mark.parametrize("who", ["trader", "staff"])
def test_every_operation_keeps_the_contract(
    who: str, container: Container, db_backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from rampart.web.app import create_app

    seed(container)
    app = create_app(container)
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.config.generation.update(with_security_parameters=False)
    tally = Tally()
    with TestClient(app, base_url="https://testserver") as client:
        auth = signed_in(client, container, who)
        for operation in _operations(schema):
            tally.operations += 1
            # Valid requests, then invalid ones (a NUL in an id, a number for a string ...):
            # both must get a declared answer, never a 5xx.
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _run_operation(operation, client, auth, tally, mode)
    figure = (
        f"contract [{db_backend}, {who}]: {tally.operations} operations, {tally.cases} cases, "
        f"{len(tally.failures)} failures"
    )
    with capsys.disabled():
        print("\n" + figure)
    unique = sorted(set(tally.failures))
    assert not unique, figure + "\n" + "\n".join(unique[:60])


def test_an_undeclared_method_is_405_not_another_routes_answer(container: Container) -> None:
    """A path parameter route must not catch a sibling path's other methods: for every path of
    the schema, each method that no operation declares for it is 405 with `Allow` (signed in as
    staff, so that access is never the answer). Before ids were routed by type, `DELETE
    /v1/mfa/webauthn/registrations` was a 422 from `DELETE /v1/mfa/webauthn/{authenticator_id}`."""
    from rampart.web.app import create_app

    app = create_app(container)
    spec = app.openapi()
    matchers = [
        (re.compile(_path_regex(path, operations)), set(operations))
        for path, operations in spec["paths"].items()
    ]
    wrong: list[str] = []
    with TestClient(app, base_url="https://testserver") as client:
        auth = signed_in(client, container, "staff")
        for path, operations in spec["paths"].items():
            concrete = path
            for name, schema in _path_parameters(operations).items():
                concrete = concrete.replace("{" + name + "}", _sample(schema))
            declared = set().union(*(m for rx, m in matchers if rx.fullmatch(concrete)))
            for method in sorted(METHODS - declared):
                response = client.request(method.upper(), concrete, headers=auth)
                if response.status_code != 405 or "allow" not in response.headers:
                    wrong.append(f"{method.upper()} {concrete}: {response.status_code}")
    assert not wrong, "\n".join(wrong)


METHODS = {"get", "put", "post", "delete", "patch"}


def _path_parameters(operations: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        p["name"]: p["schema"]
        for operation in operations.values()
        for p in operation.get("parameters", [])
        if p["in"] == "path"
    }


def _path_regex(path: str, operations: dict[str, Any]) -> str:
    """The concrete paths `path` declares: each parameter as its schema allows."""
    regex = re.escape(path)
    for name, schema in _path_parameters(operations).items():
        if "enum" in schema:
            values = "|".join(re.escape(str(v)) for v in schema["enum"])
        elif schema.get("pattern", "").startswith("^") and schema["pattern"].endswith("$"):
            values = schema["pattern"][1:-1]
        else:
            values = "[^/]+"
        regex = regex.replace(re.escape("{" + name + "}"), f"(?:{values})")
    return regex


def _sample(schema: dict[str, Any]) -> str:
    """A value of a path parameter that its schema accepts."""
    if "enum" in schema:
        return str(schema["enum"][0])
    if schema.get("type") == "integer":
        return "1"
    if "7[0-9a-f]{3}" in schema.get("pattern", ""):
        return new_id()
    return "ACME"


def test_the_schema_declares_problems_and_how_to_authenticate(container: Container) -> None:
    """Every error answer is a problem+json Problem; a route that needs a principal names the
    three ways to be one (bearer, session cookie with CSRF on unsafe methods, RFC 9421
    signature), and a public route names none."""
    from rampart.platform.http.access import route_table
    from rampart.web.app import create_app

    app = create_app(container)
    spec = app.openapi()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert (schemes["session"]["in"], schemes["csrf"]["in"]) == ("cookie", "header")
    assert {schemes["signature"]["name"], schemes["signatureInput"]["name"]} == {
        "Signature",
        "Signature-Input",
    }
    public = {
        (method.lower(), path)
        for methods, path, declarations in route_table(app)
        for method in methods.split(",")
        if set(declarations) == {"public"}
    }
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert set(response["content"]) == {"application/problem+json"}, (path, status)
            if (method, path) in public:
                assert "security" not in operation, (method, path)
                continue
            assert {"401", "403", "422"} <= set(operation["responses"]), (method, path)
            session = {"session": []} if method == "get" else {"session": [], "csrf": []}
            assert operation["security"] == [
                {"bearer": []},
                session,
                {"signature": [], "signatureInput": []},
            ], (method, path)

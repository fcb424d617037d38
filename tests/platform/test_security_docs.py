"""docs/security/input-validation.md and docs/security/authorization.md state the rules the code
applies (ASVS 2.1.1, 2.1.2, 8.1.2): their per-route tables are generated from the application's
own schema and access declarations, and fail here when a model, a route or a permission changes
without them. `RAMPART_WRITE_DOCS=1 pytest tests/platform/test_security_docs.py` rewrites them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from tests.support.apidocs import (
    authorization_rows,
    block,
    full_schema,
    limiter_rows,
    replace_block,
    validation_rows,
)

from rampart.access.domain import BUILTIN_ROLES
from rampart.config import IdentitySettings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security"
INPUT_VALIDATION = DOCS / "input-validation.md"
AUTHORIZATION = DOCS / "authorization.md"
LIMITS = DOCS / "limits.md"
ARCHITECTURE = DOCS.parent / "decisions" / "0016-identity-and-notifications.md"


@pytest.fixture
def schema(app: FastAPI) -> dict[str, Any]:
    return full_schema(app)


def _check(path: Path, lines: list[str]) -> None:
    document = path.read_text(encoding="utf-8")
    if os.environ.get("RAMPART_WRITE_DOCS") == "1":
        path.write_text(replace_block(document, lines), encoding="utf-8")
        return
    assert block(document) == lines, (
        f"{path.name} is out of date: run RAMPART_WRITE_DOCS=1 pytest {__file__}"
    )


def test_the_input_validation_table_is_the_code_s_rules(schema: dict[str, Any]) -> None:
    lines = validation_rows(schema)
    # Every body field and parameter of the API is in it: nothing is left undocumented.
    assert len(lines) > 150
    assert "| `POST /v1/orders` | `quantity` | yes |" in "\n".join(lines)
    _check(INPUT_VALIDATION, lines)


def test_every_request_body_refuses_fields_it_does_not_list(schema: dict[str, Any]) -> None:
    open_bodies = [
        line
        for line in validation_rows(schema)
        if "| body (application/json)" in line and "no other fields" not in line
    ]
    assert not open_bodies


def test_the_field_level_access_table_is_the_code_s_routes(
    app: FastAPI, schema: dict[str, Any]
) -> None:
    lines = authorization_rows(app, schema)
    text = "\n".join(lines)
    assert "| `GET /v1/me` | authenticated |" in text
    # A route whose permission no built-in role holds would be a row nobody can use.
    assert "a custom role or grant with it" not in text
    _check(AUTHORIZATION, lines)


def test_the_documented_roles_are_the_built_in_roles() -> None:
    document = AUTHORIZATION.read_text(encoding="utf-8")
    for role, permissions in BUILTIN_ROLES.items():
        row = re.search(rf"^\| {role} \| (.+) \|$", document, re.MULTILINE)
        assert row, f"role {role} is not documented"
        documented = set(re.findall(r"`([a-z-]+:[a-z-]+)`", row.group(1)))
        assert documented == {str(p) for p in permissions}, role


def test_the_password_policy_names_the_context_specific_words() -> None:
    """ASVS 6.1.2: the list of context-specific words is documented where the policy is."""
    policy = ARCHITECTURE.read_text(encoding="utf-8")
    assert "identity.password_context_words" in policy
    assert "local" in policy
    assert "domain labels" in policy
    assert IdentitySettings().password_context_words == ["rampart"]
    assert "the product's name" in policy


def test_the_documented_rate_limits_are_the_built_in_ones() -> None:
    """ASVS 2.1.3, 6.1.1: the per-user, per-key and per-address limits are documented as coded."""
    lines = limiter_rows()
    assert any("`ip.login`" in line and "refuse (503)" in line for line in lines)
    _check(LIMITS, lines)


def test_the_documented_lockout_is_the_configured_one() -> None:
    from rampart.config import IdentitySettings

    document = LIMITS.read_text(encoding="utf-8")
    defaults = IdentitySettings()
    for name in (
        "account_free_failures",
        "account_lock_after",
        "ip_free_failures",
        "ip_lock_after",
        "lock_minutes",
    ):
        assert f"`identity.{name}` ({getattr(defaults, name)}" in document, name


def test_every_vault_purpose_has_a_data_class() -> None:
    """ASVS 14.1.1: every kind of sealed data is classified."""
    from rampart.vault.domain import Purpose

    document = (DOCS / "data.md").read_text(encoding="utf-8")
    section = document[document.index("## Vault purposes by class") :]
    classes = dict(re.findall(r"^- (C\d): (.+?)(?=^- |^`|\Z)", section, re.MULTILINE | re.DOTALL))
    assert set(classes) == {"C1", "C2", "C3"}
    classified = {p for text in classes.values() for p in re.findall(r"`([a-z-]+)`", text)}
    assert classified == {str(p) for p in Purpose}


def test_the_log_inventory_covers_every_logger() -> None:
    """ASVS 16.1.1: every logger writes to an inventoried stream."""
    source = Path(__file__).resolve().parents[2] / "src" / "rampart"
    named = set()
    for path in source.rglob("*.py"):
        named |= set(re.findall(r'get_logger\("([^"]+)"\)', path.read_text(encoding="utf-8")))
    inventory = (DOCS / "logging.md").read_text(encoding="utf-8")
    assert named
    assert all(name.startswith("rampart.") for name in named), named
    assert "`rampart.*` loggers" in inventory
    for dedicated in ("rampart.access", "rampart.security"):
        assert dedicated in named
        assert f"`{dedicated}`" in inventory

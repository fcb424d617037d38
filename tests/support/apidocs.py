"""Tables of docs/security/ generated from the running application, so they cannot drift.

`input-validation.md` lists, per route, every input and the rule it is checked against; the
`authorization.md` table lists, per route, the access it declares, the built-in roles that hold
that permission, and the fields it returns and accepts. Both come from the OpenAPI the app builds
(with any route hidden from the served schema made visible) and from the routes' own access
declarations. `tests/platform/test_security_docs.py` compares each
document's generated block with a fresh one; `RAMPART_WRITE_DOCS=1` rewrites the blocks instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from rampart.access.domain import BUILTIN_ROLES
from rampart.platform.http.access import route_table

BEGIN = "<!-- generated: do not edit by hand (tests/platform/test_security_docs.py) -->"
END = "<!-- end of generated block -->"
_MAX_DEPTH = 3
_METHODS = ("get", "post", "put", "patch", "delete")


def full_schema(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of every HTTP route, the pages' forms included."""
    hidden = [
        context.original_route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, APIRoute)
        and not context.original_route.include_in_schema
    ]
    for route in hidden:
        route.include_in_schema = True
    try:
        return get_openapi(title=app.title, version=app.version, routes=app.routes)
    finally:
        for route in hidden:
            route.include_in_schema = False


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        extra = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**spec["components"]["schemas"][name], **extra}
    return schema


def _without_null(spec: dict[str, Any], schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the schema of a value, whether null is allowed too)."""
    schema = _resolve(spec, schema)
    options = schema.get("anyOf")
    if options:
        real = [o for o in options if o.get("type") != "null"]
        nullable = len(real) < len(options)
        if len(real) == 1:
            merged = {**_resolve(spec, real[0])}
            for key in ("default", "description"):
                if key in schema:
                    merged.setdefault(key, schema[key])
            return merged, nullable
        return {"anyOf": real}, nullable
    return schema, False


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _rule(spec: dict[str, Any], schema: dict[str, Any]) -> str:
    schema, nullable = _without_null(spec, schema)
    parts: list[str] = []
    if "anyOf" in schema:
        parts.append(" or ".join(_rule(spec, o) for o in schema["anyOf"]))
    elif "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    elif "const" in schema:
        parts.append(f"exactly `{schema['const']}`")
    else:
        kind = schema.get("type", "any")
        fmt = schema.get("format")
        parts.append(f"{kind} ({fmt})" if fmt else str(kind))
    for key, label in (
        ("minLength", "length ≥"),
        ("maxLength", "length ≤"),
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
        ("minItems", "items ≥"),
        ("maxItems", "items ≤"),
    ):
        if key in schema:
            parts.append(f"{label} {schema[key]}")
    if "x-maximum" in schema:
        parts.append(f"≤ {schema['x-maximum']}")
    if "x-decimal-places" in schema:
        parts.append(f"≤ {schema['x-decimal-places']} decimals")
    if "pattern" in schema:
        parts.append(f"matches `{schema['pattern']}`")
    if schema.get("type") == "array" and "items" in schema:
        parts.append(f"each: {_rule(spec, schema['items'])}")
    if schema.get("type") == "object" and schema.get("additionalProperties") is False:
        parts.append("no other fields")
    if nullable:
        parts.append("or null")
    return "; ".join(parts)


def _fields(
    spec: dict[str, Any], schema: dict[str, Any], prefix: str = "", depth: int = 0
) -> list[tuple[str, dict[str, Any], bool]]:
    """(dotted name, schema, required) for every field of an object body, nested ones too."""
    schema, _ = _without_null(spec, schema)
    rows: list[tuple[str, dict[str, Any], bool]] = []
    required = set(schema.get("required", ()))
    for name, field in schema.get("properties", {}).items():
        dotted = f"{prefix}{name}"
        rows.append((dotted, field, name in required))
        inner, _ = _without_null(spec, field)
        if depth < _MAX_DEPTH and inner.get("type") == "object" and "properties" in inner:
            rows += _fields(spec, inner, dotted + ".", depth + 1)
        items = inner.get("items")
        if depth < _MAX_DEPTH and inner.get("type") == "array" and isinstance(items, dict):
            item, _ = _without_null(spec, items)
            if "properties" in item:
                rows += _fields(spec, item, dotted + "[].", depth + 1)
    return rows


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    ops = []
    for path in sorted(spec["paths"]):
        for method in _METHODS:
            op = spec["paths"][path].get(method)
            if op is not None:
                ops.append((method.upper(), path, op))
    return ops


def validation_rows(spec: dict[str, Any]) -> list[str]:
    """The input-validation table: one row per input of every route."""
    lines = [
        "| Route | Input | Required | Rule |",
        "|---|---|---|---|",
    ]
    for method, path, op in _operations(spec):
        route = f"`{method} {path}`"
        for param in op.get("parameters", []):
            lines.append(
                f"| {route} | {param['in']} `{param['name']}` | "
                f"{'yes' if param.get('required') else 'no'} | "
                f"{_cell(_rule(spec, param.get('schema', {})))} |"
            )
        body = op.get("requestBody")
        if not body:
            continue
        for media, content in sorted(body["content"].items()):
            schema = content.get("schema", {})
            resolved, _ = _without_null(spec, schema)
            lines.append(
                f"| {route} | body ({media}) | {'yes' if body.get('required') else 'no'} | "
                f"{_cell(_rule(spec, schema))} |"
            )
            for name, field, required in _fields(spec, resolved):
                lines.append(
                    f"| {route} | `{name}` | {'yes' if required else 'no'} | "
                    f"{_cell(_rule(spec, field))} |"
                )
    return lines


def _declared_access(app: FastAPI) -> dict[tuple[str, str], list[str]]:
    table: dict[tuple[str, str], list[str]] = {}
    for methods, path, declarations in route_table(app):
        for method in methods.split(","):
            table[(method, path)] = declarations
    return table


def _roles_for(declarations: list[str]) -> str:
    """The built-in roles that hold every permission the route declares (`a:b+step-up` needs
    `a:b` and a fresh factor; `authenticated` needs a principal and no permission)."""
    permissions = set()
    for declaration in declarations:
        base = declaration.split("+", 1)[0]
        if ":" in base:
            permissions.add(base)
    if not permissions:
        if set(declarations) == {"public"}:
            return "anyone"
        return "any signed-in principal"
    roles = [
        str(name)
        for name, granted in sorted(BUILTIN_ROLES.items())
        if permissions <= {str(p) for p in granted}
    ]
    return ", ".join(roles) if roles else "a custom role or grant with it"


def _response_schema(op: dict[str, Any]) -> dict[str, Any] | None:
    for status in ("200", "201"):
        content = op.get("responses", {}).get(status, {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema is not None:
            return dict(schema)
    return None


def _names(spec: dict[str, Any], schema: dict[str, Any] | None) -> str:
    if schema is None:
        return "—"
    resolved, _ = _without_null(spec, schema)
    if resolved.get("type") == "array" and isinstance(resolved.get("items"), dict):
        resolved, _ = _without_null(spec, resolved["items"])
        prefix = "each: "
    else:
        prefix = ""
    fields = [name for name, _, _ in _fields(spec, resolved)]
    if not fields:
        return "—" if not resolved else f"{prefix}(free-form {_rule(spec, resolved)})"
    return prefix + ", ".join(f"`{f}`" for f in fields)


def authorization_rows(app: FastAPI, spec: dict[str, Any]) -> list[str]:
    """The field-level access table: per route, who may call it and which fields it reads and
    writes."""
    access = _declared_access(app)
    lines = [
        "| Route | Access declared | Built-in roles holding it | Fields returned "
        "| Fields written |",
        "|---|---|---|---|---|",
    ]
    for method, path, op in _operations(spec):
        declarations = access.get((method, path), [])
        body = op.get("requestBody")
        written = "—"
        if body:
            (content,) = list(body["content"].values())[:1]
            written = _names(spec, content.get("schema"))
        lines.append(
            f"| `{method} {path}` | {_cell(', '.join(declarations) or '—')} | "
            f"{_roles_for(declarations)} | {_cell(_names(spec, _response_schema(op)))} | "
            f"{_cell(written)} |"
        )
    return lines


def limiter_rows() -> list[str]:
    """The rate-limiter table: every built-in limiter, its allowance and its failure mode."""
    from rampart.ratelimit.domain import DEFAULT_LIMITS

    scopes = {"ip": "client address", "user": "person", "key": "API key"}
    lines = [
        "| Limiter | Whose allowance | Sustained rate | Burst | If the store is down |",
        "|---|---|---|---|---|",
    ]
    for name, spec in sorted(DEFAULT_LIMITS.items()):
        period = f"{spec.period:g} s"
        lines.append(
            f"| `{name}` | {scopes.get(spec.scope, spec.scope)} | {spec.count} per {period} | "
            f"{spec.burst} | {'refuse (503)' if spec.fail_closed else 'allow and log'} |"
        )
    return lines


def replace_block(document: str, lines: list[str]) -> str:
    start = document.index(BEGIN) + len(BEGIN)
    end = document.index(END)
    return document[:start] + "\n" + "\n".join(lines) + "\n" + document[end:]


def block(document: str) -> list[str]:
    start = document.index(BEGIN) + len(BEGIN)
    end = document.index(END)
    return document[start:end].strip("\n").splitlines()

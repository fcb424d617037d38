"""More behaviours docs/security/asvs.md claims as met, asserted through the application and its
source: encoding, browser code, file names, strict types, cryptographic choices, outbound
connections and logging. Each test names the rows it backs.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import re
import sys
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.identity.support import PASSWORD, bearer, login, verified_user
from tests.support.apidocs import full_schema

from rampart.bootstrap import Container
from rampart.identity.api import RegisterIn
from rampart.identity.domain import new_token
from rampart.kernel.clock import FrozenClock
from rampart.platform.logging import configure_logging
from rampart.trading.api import OrderIn
from rampart.vault.domain import (
    HEADER_BYTES,
    NONCE_BYTES,
    Header,
    Purpose,
    SealContext,
    associated_data,
    new_key,
    seal_with,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "rampart"
STATIC = SOURCE / "web" / "static"
TEMPLATES = SOURCE / "web" / "templates"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def _python() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in SOURCE.rglob("*.py")}


def _scripts() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in STATIC.glob("*.js")}


def _templates() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in TEMPLATES.glob("*.html")}


def _offenders(sources: dict[str, str], pattern: str) -> list[str]:
    compiled = re.compile(pattern)
    return sorted(name for name, text in sources.items() if compiled.search(text))


def _page_sign_in(client: TestClient, email: str) -> None:
    page = client.get("/login")
    match = CSRF_FIELD.search(page.text)
    assert match
    sent = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": match.group(1)},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text


# --- V14.3.3: nothing sensitive in browser storage --------------------------------------------
def test_browser_code_keeps_nothing_in_browser_storage() -> None:
    scripts = _scripts()
    # (#16 item 5: `api-docs.js` starts the vendored Swagger UI on /docs; the vendored bundle
    # itself is third-party, pinned by digest in data/SOURCES.md and held by the CSP at run time.)
    # (#16 item 2: `keys.js` holds the copy buttons of a new API key's page.)
    assert set(scripts) == {"market.js", "mfa-webauthn.js", "api-docs.js", "keys.js"}
    for name, text in scripts.items():
        assert not re.search(r"\b(sessionStorage|localStorage|indexedDB)\b", text), name
        assert "document.cookie" not in text, name
    # The backup codes of a new security key are shown from the registration response itself.
    assert "showNewBackupCodes(button, done.backup_codes" in scripts["mfa-webauthn.js"]


# --- V6.6.1: text-message codes beside stronger factors, with their risk ----------------------
def test_sms_codes_are_offered_beside_stronger_factors_with_their_risk(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "sms-risk@example.com")
    _page_sign_in(client, "sms-risk@example.com")
    page = client.get("/security/mfa")
    assert page.status_code == 200
    text = page.text
    risk = text.index('id="sms-risk"')
    assert "SIM swap" in text[risk : risk + 800]
    assert risk < text.index('action="/security/mfa/sms/enrol"')
    # The stronger factors are on offer on the same page.
    assert "Add a security key or passkey" in text
    assert "Set up an authenticator app" in text


# --- V1.1.1: input decoded once, by the framework -------------------------------------------
def test_the_source_never_decodes_input_by_hand() -> None:
    assert not _offenders(_python(), r"\b(unquote|unquote_plus|unescape)\(")


# --- V1.2.2: URLs built in browser code encode what they splice in ----------------------------
def test_browser_code_encodes_every_value_it_puts_in_a_url() -> None:
    unencoded = re.compile(r'"/[^"]*"\s*\+\s*(?=\S)(?!encodeURIComponent\()')
    for name, text in _scripts().items():
        assert not unencoded.findall(text), name
        # api-docs.js only starts Swagger UI; keys.js only copies text: neither builds a URL.
        if name not in {"api-docs.js", "keys.js"}:
            assert "encodeURIComponent(" in text, name


# --- V1.2.3, V3.2.2: no HTML built from strings; scripts only from our files ------------------
def test_browser_code_writes_text_not_markup() -> None:
    for name, text in _scripts().items():
        assert not re.search(
            r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function",
            text,
        ), name
        if name != "api-docs.js":  # it writes no text: it only starts Swagger UI
            assert "textContent" in text, name


def test_every_script_is_one_of_our_files_and_carries_the_nonce() -> None:
    # V3.7.1: plain JavaScript from our own origin: no plugins, no third-party scripts or CDNs.
    scripts = 0
    for name, text in _templates().items():
        for tag in re.findall(r"<script\b[^>]*>", text.split("{#")[0] + text.split("#}")[-1]):
            scripts += 1
            assert re.search(r'src="/static/[a-z-]+\.js"', tag), (name, tag)
            assert 'nonce="{{ csp_nonce }}"' in tag, (name, tag)
        assert not re.search(r"<(object|embed|applet)\b", text), name
    assert scripts >= 4


# --- V1.2.9: regular expressions are built from constants ------------------------------------
def test_no_regular_expression_is_built_from_request_data() -> None:
    dynamic = re.compile(r"re\.(compile|search|match|fullmatch|sub|findall|split)\(\s*r?f[\"']")
    built = {name for name, text in _python().items() if dynamic.search(text)}
    # These interpolate module constants (the RFC 8941 grammar, the API key's length), not input.
    assert built <= {"src/rampart/apikeys/signatures.py", "src/rampart/apikeys/domain.py"}


# --- V1.3.3, V2.2.1: every text input the API takes is bounded --------------------------------
def test_every_text_input_is_bounded(app: FastAPI) -> None:
    spec = full_schema(app)
    schemas = spec["components"]["schemas"]

    def unbounded(schema: dict, where: str) -> list[str]:  # type: ignore[type-arg]
        if "$ref" in schema:
            return []  # checked where the component is
        found = []
        for option in schema.get("anyOf", []):
            found += unbounded(option, where)
        pattern = schema.get("pattern")
        bounded_pattern = pattern is not None and not re.search(r"[*+]|\{\d+,\}", pattern)
        if schema.get("type") == "string" and not (
            "maxLength" in schema
            or "enum" in schema
            or "const" in schema
            or bounded_pattern
            or schema.get("format") == "date-time"
        ):
            found.append(where)
        if schema.get("type") == "array":
            if "maxItems" not in schema:
                found.append(where + "[]")
            found += unbounded(schema.get("items", {}), where + "[]")
        return found

    problems: list[str] = []
    request_components: set[str] = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for param in op.get("parameters", []):
                problems += unbounded(param["schema"], f"{method} {path} {param['name']}")
            for content in op.get("requestBody", {}).get("content", {}).values():
                ref = content["schema"].get("$ref") or next(
                    (o["$ref"] for o in content["schema"].get("anyOf", []) if "$ref" in o), None
                )
                if ref:
                    request_components.add(ref.rsplit("/", 1)[-1])
    seen: set[str] = set()
    while request_components:
        name = request_components.pop()
        seen.add(name)
        for field, schema in schemas[name].get("properties", {}).items():
            problems += unbounded(schema, f"{name}.{field}")
            for ref in re.findall(r'"\$ref": "#/components/schemas/(\w+)"', str(schema)):
                if ref not in seen:
                    request_components.add(ref)
            for ref in re.findall(r"'\$ref': '#/components/schemas/(\w+)'", str(schema)):
                if ref not in seen:
                    request_components.add(ref)
    assert len(seen) > 30
    assert not problems


# --- V1.3.6, V13.2.4, V13.2.5: outbound requests only to configured peers --------------------
def test_outbound_http_is_made_only_by_the_modules_of_configured_peers() -> None:
    calls = re.compile(r"httpx\.(get|post|put|patch|delete|request|stream|Client|AsyncClient)\(")
    callers = {name for name, text in _python().items() if calls.search(text)}
    assert callers == {
        "src/rampart/audit/checkpoints.py",  # RAMPART_AUDIT__CHECKPOINT_SINK
        "src/rampart/notifications/transports.py",  # RAMPART_NOTIFICATIONS__SMS_HTTP_URL
        "src/rampart/client/client.py",  # the user-side client library, not the server
    }
    assert not _offenders(_python(), r"\burllib\.request\b|\brequests\.(get|post)\(|http\.client")


# --- V1.3.7: templates are files, never built from data ---------------------------------------
def test_templates_are_never_built_from_strings() -> None:
    assert not _offenders(_python(), r"from_string\(|jinja2\.Template\(|\bTemplate\(")
    renders = re.findall(r"\brender\(\s*request,\s*([^,)]+)", "\n".join(_python().values()))
    assert renders
    for first in renders:
        assert re.fullmatch(r'"[a-z_]+\.html"|[a-z_]*template[a-z_]*|name', first.strip()), first


# --- V4.1.2: the API never redirects a client from http to https ------------------------------
def test_api_clients_are_answered_not_redirected_to_https(app: FastAPI) -> None:
    with TestClient(app, base_url="http://testserver") as plain:
        for path, status in (("/healthz", 200), ("/v1/me", 401), ("/nowhere", 404)):
            response = plain.get(path, follow_redirects=False)
            assert response.status_code == status, path
            assert "location" not in response.headers


# --- V5.3.2, V5.4.1, V5.4.2: file names are the server's own ---------------------------------
def test_served_file_names_are_fixed_by_the_server() -> None:
    every_module = "\n".join(_python().values())
    dispositions = re.findall(r"content-disposition[\"']?\s*:\s*(.+)", every_module, re.I)
    assert dispositions
    for value in dispositions:
        assert re.fullmatch(r"""'attachment; filename="[a-z.-]+"'\}?""", value.strip()), value


def test_the_mailbox_opens_messages_by_id_only(client: TestClient) -> None:
    for path in ("/dev/mailbox/..%2F..%2Fetc%2Fpasswd", "/dev/mailbox/../../config.py"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "root:" not in response.text


# --- V6.2.10: passwords do not expire ---------------------------------------------------------
def test_a_password_stays_valid_however_old_it_is(
    client: TestClient, container: Container, clock: FrozenClock
) -> None:
    verified_user(client, container, "old-password@example.com")
    clock.advance(timedelta(days=400))
    assert login(client, "old-password@example.com")["access_token"]


# --- V6.4.2: no hints, no secret questions ----------------------------------------------------
def test_sign_up_asks_for_no_hint_or_secret_question(client: TestClient) -> None:
    assert set(RegisterIn.model_fields) == {"email", "password"}
    page = client.get("/signup").text.lower()
    names = set(re.findall(r'<input[^>]*name="([a-z_]+)"', page))
    assert names == {"email", "password", "csrf_token"}
    assert "password hint" not in page
    assert "question" not in page


# --- V8.2.3: a caller cannot write fields it was not given -----------------------------------
def test_a_body_cannot_set_fields_the_model_does_not_list(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "mass@example.com")
    token = login(client, "mass@example.com")["access_token"]
    smuggled = client.post(
        "/v1/me/password",
        headers=bearer(token),
        json={"current_password": PASSWORD, "new_password": "x" * 20, "roles": ["ADMIN"]},
    )
    assert smuggled.status_code == 422
    assert smuggled.json()["errors"][0]["kind"] == "extra_forbidden"
    me = client.get("/v1/me", headers=bearer(token)).json()
    assert me["roles"] == ["TRADER"]


# --- V9.2.4: one audience per signing key -----------------------------------------------------
def test_access_tokens_have_one_audience_and_their_own_key(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "aud@example.com")
    token = login(client, "aud@example.com")["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == container.settings.identity.jwt_audience == "rampart-api"
    jwks = {k["x"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
    audit_keys = client.get("/audit/keys").text
    assert jwks
    assert not any(x in audit_keys for x in jwks)


# --- V11.2.1: the standard implementations, interoperable -------------------------------------
def test_vault_ciphertexts_are_standard_aes_256_gcm() -> None:
    key = new_key()
    context = SealContext(table="t", column="c", row_id="r")
    header = Header(Purpose.MFA_SECRET, key_version=1)
    blob = seal_with(key, header, b"interoperable", context)
    nonce = blob[HEADER_BYTES : HEADER_BYTES + NONCE_BYTES]
    aad = associated_data(blob[:HEADER_BYTES], context)
    # pyca/cryptography's AES-GCM, called directly, opens what the vault sealed.
    opened = AESGCM(key).decrypt(nonce, blob[HEADER_BYTES + NONCE_BYTES :], aad)
    assert opened == b"interoperable"


# --- V11.2.3, V11.6.1: at least 128 bits of security, keys from approved generators -----------
def test_keys_and_tokens_carry_at_least_128_bits() -> None:
    assert len(new_key()) * 8 == 256
    assert len({new_key() for _ in range(100)}) == 100
    # 43 URL-safe characters: 256 bits.
    assert len(new_token()) * 6 >= 256
    from rampart.apikeys.domain import RANDOM_CHARS

    assert RANDOM_CHARS * 5.95 >= 128  # base62


# --- V11.4.1: approved hash functions only ----------------------------------------------------
def test_no_broken_hash_function_is_used() -> None:
    weak = r"hashlib\.(md5|sha1)\(|hashes\.(MD5|SHA1)\(|\"(md5|sha1)\"|'(md5|sha1)'"
    # HMAC-SHA1 is allowed only inside RFC 6238 TOTP (its standard algorithm, Appendix C).
    assert set(_offenders(_python(), weak)) <= {"src/rampart/identity/mfa/domain.py"}


# --- V12.3.2: TLS clients verify certificates -------------------------------------------------
def test_no_tls_client_turns_certificate_checks_off() -> None:
    off = r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context"
    assert not _offenders(_python(), off)
    assert "ssl.create_default_context()" in _python()["src/rampart/notifications/transports.py"]


# --- V13.1.1: every outbound peer's setting is in the communications inventory ----------------
def test_the_communications_inventory_names_every_peer_setting() -> None:
    document = (ROOT / "docs" / "security" / "communications.md").read_text(encoding="utf-8")
    for setting in (
        "RAMPART_DATABASE_URL",
        "RAMPART_REDIS_URL",
        "RAMPART_NOTIFICATIONS__SMTP_",
        "RAMPART_NOTIFICATIONS__SMS_HTTP_URL",
        "RAMPART_AUDIT__CHECKPOINT_SINK",
        "RAMPART_TLS_CA_BUNDLE",
        "RAMPART_PUBLIC_URL",
        "RAMPART_TRUSTED_PROXIES",
    ):
        assert setting in document, setting


# --- V15.3.5: strict types at the edge --------------------------------------------------------
def test_values_of_the_wrong_type_are_refused_not_coerced(client: TestClient) -> None:
    refused = client.post("/v1/auth/login", json={"email": 12345, "password": True})
    assert refused.status_code == 422
    kinds = {e["loc"][-1]: e["kind"] for e in refused.json()["errors"]}
    assert kinds == {"email": "string_type", "password": "string_type"}
    with pytest.raises(ValueError, match="quantity"):
        OrderIn.model_validate({"symbol": "ACME", "side": "buy", "quantity": 1.5})


# --- V15.3.6: browser code builds no objects from untrusted keys ------------------------------
def test_browser_code_cannot_pollute_prototypes() -> None:
    for name, text in _scripts().items():
        assert "__proto__" not in text, name
        assert not re.search(r"\.prototype(\.\w+)*\s*=[^=]", text), name
        # Only numeric indexes are assigned through brackets (typed arrays), never a key taken
        # from data; objects are copied into fresh literals, never merged into shared ones.
        assert set(re.findall(r"\w+\[(\w+)\]\s*=[^=]", text)) <= {"i"}, name
        assert all(
            call.startswith("Object.assign({},")
            for call in re.findall(r"Object\.assign\([^,]*,", text)
        ), name


# --- V15.3.7: a repeated parameter does not slip past validation ------------------------------
def test_a_repeated_query_parameter_is_still_validated(
    client: TestClient, container: Container
) -> None:
    verified_user(client, container, "hpp@example.com")
    token = login(client, "hpp@example.com")["access_token"]
    fine = client.get("/v1/orders?limit=5", headers=bearer(token))
    assert fine.status_code == 200
    # The last value is the one bound, and it is validated like a single one: no value escapes
    # the check by hiding behind another.
    refused = client.get("/v1/orders?limit=5&limit=100000", headers=bearer(token))
    assert refused.status_code == 422
    taken = client.get("/v1/orders?limit=100000&limit=5", headers=bearer(token))
    assert taken.status_code == 200


# --- V16.2.3: logs go to the one documented stream, nowhere else ------------------------------
def test_logs_go_only_to_standard_error() -> None:
    saved = logging.getLogger().handlers[:]
    try:
        configure_logging("info", json=True)
        handlers = logging.getLogger().handlers
        assert len(handlers) == 1
        assert type(handlers[0]) is logging.StreamHandler
        assert handlers[0].stream is sys.stderr
        every = [
            h
            for logger in logging.Logger.manager.loggerDict.values()
            if isinstance(logger, logging.Logger)
            for h in logger.handlers
        ]
        elsewhere = (
            logging.FileHandler,
            logging.handlers.SysLogHandler,
            logging.handlers.SocketHandler,
            logging.handlers.HTTPHandler,
            logging.handlers.SMTPHandler,
        )
        assert not [h for h in every if isinstance(h, elsewhere)]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers[:] = saved


def test_log_lines_are_written_as_one_json_object_each() -> None:
    stream = io.StringIO()
    saved = logging.getLogger().handlers[:]
    try:
        configure_logging("info", json=True, stream=stream)
        structlog.get_logger("rampart.test").warning("two\nlines", path="/a\r\nforged")
        logging.getLogger("library").warning("from a library")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers[:] = saved
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert all(line.startswith("{") and line.endswith("}") for line in lines)


# --- V11.6.1: signing keys come from an approved KDF over a random root -----------------------
def test_jwt_signing_keys_are_hkdf_sha256_derivations_of_the_root() -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from rampart.config import IdentitySettings
    from rampart.identity.tokens import SigningKeys
    from rampart.kernel.secret import Secret

    root = new_key()
    keys = SigningKeys(None, None, Secret(root), IdentitySettings())  # type: ignore[arg-type]
    raw = serialization.Encoding.Raw
    public = serialization.PublicFormat.Raw

    def derived(kid: str) -> bytes:
        return keys._derive(kid).public_key().public_bytes(raw, public)

    seed = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"rampart-jwt-signing-key", info=b"k1"
    ).derive(root)
    expected = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(raw, public)
    assert derived("k1") == expected
    # One root, independent keys per id: rotating the kid gives an unrelated key.
    assert derived("k2") != derived("k1")

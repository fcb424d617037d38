"""The API reference at `/docs`: Swagger UI 5, vendored and served from this origin, renders the
OpenAPI 3.1 document in a real Chromium under the app's CSP; its front page explains how to sign a
request, with an example the server's verifier accepts; and the site has a favicon.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, served_with_trader

from rampart.apikeys.signatures import (
    SignedRequest,
    check_content_digest,
    check_coverage,
    check_freshness,
    parse_signature,
    signature_base,
    verify,
)
from rampart.bootstrap import Container
from rampart.client.signing import HmacSigner, sign_request
from rampart.web import apidoc
from rampart.web.pages.templating import STATIC_DIR

ROOT = Path(__file__).resolve().parents[2]
VENDOR = STATIC_DIR / "vendor" / "swagger-ui"


def _recorded_digests() -> dict[str, str]:
    """The `| file | sha256 |` rows of the Swagger UI entry in data/SOURCES.md."""
    text = (ROOT / "data" / "SOURCES.md").read_text(encoding="utf-8")
    entry = text.split("## src/rampart/web/static/vendor/swagger-ui/", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"\|\s*`([^`]+)`\s*\|\s*`([0-9a-f]{64})`\s*\|", entry))


def test_the_vendored_swagger_ui_files_are_the_recorded_ones() -> None:
    recorded = _recorded_digests()
    shipped = {p.name for p in VENDOR.iterdir() if p.is_file()}
    assert shipped == set(recorded), "every vendored file is recorded, and only those"
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    entry = (ROOT / "data" / "SOURCES.md").read_text(encoding="utf-8")
    assert "swagger-ui-dist 5." in entry
    assert "Apache-2.0" in entry


def test_the_docs_page_runs_only_same_origin_files_and_no_inline_script(
    client: TestClient,
) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' 'nonce-" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, flags=re.S)
    assert scripts, "Swagger UI is loaded"
    assert all(body.strip() == "" for _, body in scripts), "no inline script"
    sources = [re.search(r'src="([^"]+)"', attrs) for attrs, _ in scripts]
    paths = [m.group(1) for m in sources if m]
    assert paths == ["/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/api-docs.js"]
    for path in paths:
        asset = client.get(path)
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(
            ("text/javascript", "application/javascript")
        )
    css = client.get("/static/vendor/swagger-ui/swagger-ui.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")
    # The Python package that shipped Swagger UI 4 is gone with its mount.
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 404


def test_the_favicon_is_served_as_svg_and_linked_from_every_page(client: TestClient) -> None:
    svg = (STATIC_DIR / "favicon.svg").read_bytes()
    for path in ("/favicon.ico", "/static/favicon.svg"):
        icon = client.get(path)
        assert icon.status_code == 200
        assert icon.headers["content-type"] == "image/svg+xml"
        assert icon.content == svg
        assert icon.headers["x-content-type-options"] == "nosniff"
    link = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
    assert link in client.get("/login").text
    assert link in client.get("/docs").text


def test_the_openapi_description_explains_every_way_to_authenticate(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    description = spec["info"]["description"]
    assert description == apidoc.API_DESCRIPTION
    for needle in (
        "Authorization: Bearer",
        "__Host-rampart_session",
        "X-CSRF-Token",
        "RFC 9421",
        "`@method`",
        "`@target-uri`",
        "`content-digest`",
        "`keyid`",
        "`created`",
        "`nonce`",
        "`hmac-sha256`",
        "`ed25519`",
        apidoc.EXAMPLE_HEADERS["Signature"],
    ):
        assert needle in description, needle
    schemes = spec["components"]["securitySchemes"]
    assert set(schemes) == {"bearer", "session", "csrf", "signature", "signatureInput"}


def _example_request() -> SignedRequest:
    headers = {name.lower(): [value] for name, value in apidoc.EXAMPLE_HEADERS.items()}
    return SignedRequest(
        method="POST",
        scheme="https",
        authority="rampart.example",
        path="/v1/orders",
        query="",
        headers=headers,
        body=apidoc.EXAMPLE_BODY,
    )


def test_the_documented_example_is_a_signature_the_server_accepts() -> None:
    request = _example_request()
    parsed = parse_signature(request.headers)
    assert parsed is not None
    check_coverage(parsed, request)
    check_freshness(parsed, apidoc.EXAMPLE_CREATED + 1, max_age=30, future_skew=5)
    check_content_digest(request)
    assert parsed.params["keyid"] == apidoc.EXAMPLE_KEY_ID
    assert parsed.params["created"] == apidoc.EXAMPLE_CREATED
    assert parsed.params["nonce"] == apidoc.EXAMPLE_NONCE
    base = signature_base(parsed, request)
    assert base.decode() in apidoc.API_DESCRIPTION, "the page shows the exact signature base"
    key = apidoc.EXAMPLE_SECRET.encode("ascii")
    assert verify("hmac-sha256", key, base, parsed.signature)
    # A changed body no longer matches the signed digest; a changed method, the signature.
    tampered = SignedRequest(**{**_fields(request), "method": "PUT"})
    assert not verify("hmac-sha256", key, signature_base(parsed, tampered), parsed.signature)


def _fields(request: SignedRequest) -> dict[str, Any]:
    return {name: getattr(request, name) for name in SignedRequest.__dataclass_fields__}


def test_the_documented_example_is_what_rampart_client_sends() -> None:
    signed = sign_request(
        "POST",
        apidoc.EXAMPLE_URL,
        {"Content-Type": "application/json"},
        apidoc.EXAMPLE_BODY,
        key_id=apidoc.EXAMPLE_KEY_ID,
        signer=HmacSigner(apidoc.EXAMPLE_SECRET),
        now=lambda: apidoc.EXAMPLE_CREATED,
        nonce=apidoc.EXAMPLE_NONCE,
    )
    documented = {k: v for k, v in apidoc.EXAMPLE_HEADERS.items() if k != "Content-Type"}
    assert signed == documented


@pytest.fixture
def served(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Container]]:
    with served_with_trader(
        sqlite_template, tmp_path, "docs@example.com", "a long docs passphrase 42"
    ) as running:
        yield running


@pytest.mark.browser
def test_docs_render_the_operations_in_chromium_without_a_csp_violation(
    served: tuple[str, Container],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    origin, _ = served
    console: list[str] = []
    failed: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            # Injected by the browser, not the page: it reports every CSP refusal, which Chromium
            # also logs to the console.
            page.add_init_script(
                "document.addEventListener('securitypolicyviolation', e => console.error("
                "'CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
            )
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
            page.on(
                "response",
                lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            page.goto(f"{origin}/docs")
            order = page.locator(
                '.opblock.opblock-post:has(.opblock-summary-path[data-path="/v1/orders"])'
            )
            expect(order).to_be_visible(timeout=20_000)
            expect(page.locator(".info .title")).to_contain_text("Rampart")
            signing = "Signing a request with an API key (RFC 9421)"
            expect(page.get_by_role("heading", name=signing)).to_be_visible()
            expect(page.locator("body")).not_to_contain_text("Unable to render")
            # Opening the operation shows its parameters and its problem responses.
            order.locator(".opblock-summary-control").click()
            expect(order.locator(".responses-wrapper")).to_contain_text("429")
            page.wait_for_load_state("networkidle")
        finally:
            browser.close()
    problems = [line for line in console if line.startswith(("error", "pageerror"))]
    assert not problems, problems
    assert not any("Content Security Policy" in line for line in console), console
    assert not failed, failed

"""A real headless Chromium registers a security key on the security page, signs out, and signs
back in with it. The key is a CDP virtual authenticator (CTAP2 over USB, resident keys, user
verification), so the browser runs the real WebAuthn ceremonies against the real server.

WebAuthn needs a secure context: http://localhost is one, so the server is reached as
`localhost`, with RP id `localhost` and origin `http://localhost:<port>`. The `__Host-` Secure
session cookie is accepted by Chromium there for the same reason, so production cookie settings
are used unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rampart.bootstrap import Container
from rampart.identity.sessions import ClientInfo  # noqa: F401 - the identity package is wired
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, add_security_key, served_with_trader

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
EMAIL = "kim@example.com"
PASSWORD = "a long and unguessable passphrase 7"


@pytest.fixture
def served(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Container]]:
    with served_with_trader(sqlite_template, tmp_path, EMAIL, PASSWORD) as running:
        yield running


def _sign_in(page, origin: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{origin}/login")
    page.fill('input[name="email"]', EMAIL)
    page.fill('input[name="password"]', PASSWORD)
    page.click('button[type="submit"]')


def test_register_a_security_key_sign_out_and_sign_back_in_with_it(
    served: tuple[str, Container],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    origin, container = served
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            cdp, authenticator = add_security_key(context, page)

            # Password only: no factor yet.
            _sign_in(page, origin)
            page.wait_for_url(f"{origin}/security")
            assert "__Host-rampart_session" in {c["name"] for c in context.cookies()}

            # Enrol the key on the security page.
            page.goto(f"{origin}/security/mfa")
            page.fill("#webauthn-name", "Desk key")
            page.click("#add-security-key")
            expect(page.locator("#mfa-new-backup-codes li")).to_have_count(10, timeout=15_000)
            page.screenshot(path=str(ARTIFACTS / "mfa-enrolment.png"), full_page=True)
            # The codes came from the response and are on the page only: nothing of them (nor
            # anything else) is left in the browser's storage for a later script to read.
            shown = page.locator("#mfa-new-backup-codes li").all_inner_texts()
            stored = page.evaluate(
                "JSON.stringify(Object.assign({}, sessionStorage, localStorage))"
            )
            assert stored == "{}"
            assert not any(code in stored for code in shown)
            page.click("#mfa-backup-codes-saved")
            expect(page.locator("table")).to_contain_text("Desk key", timeout=15_000)
            expect(page.locator("#mfa-new-backup-codes li")).to_have_count(0)
            credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
            assert len(credentials["credentials"]) == 1
            with container.db.read() as session:
                keys = container.mfa.authenticators(session, _user_id(container))
            assert [k.name for k in keys] == ["Desk key"]

            # Sign out, and back in: the password alone now stops at the second factor.
            page.click("text=Sign out")
            page.wait_for_url(f"{origin}/login*")
            _sign_in(page, origin)
            page.wait_for_url(f"{origin}/login/second-factor")
            assert "__Host-rampart_session" not in {c["name"] for c in context.cookies()}
            page.click("#use-security-key")
            page.wait_for_url(f"{origin}/security", timeout=15_000)
            expect(page.locator("h1")).to_contain_text("Security")
            used = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
            assert used["credentials"][0]["signCount"] >= 1
        finally:
            browser.close()


def _user_id(container: Container) -> str:
    with container.db.read() as session:
        user = container.identity.accounts.by_email(session, EMAIL)
        assert user is not None
        return str(user.id)

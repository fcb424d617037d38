"""A real headless Chromium follows the emailed links while signed in, and meets an error page.

A person asks for a new email address on the security page and, still signed in, opens the
confirmation link; then asks for a password reset and opens that link too. Each page's button
works (no raw 403). A mistyped address answers with the site's error page, not JSON.
Server and browser as in tests/mfa/test_browser.py: uvicorn on localhost, Debian's Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.identity.support import link_token
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, served_with_trader

from rampart.bootstrap import Container

pytestmark = pytest.mark.browser

EMAIL = "robin@example.com"
NEW_EMAIL = "robin.moved@example.com"
PASSWORD = "a long and unguessable passphrase 7"
# (Deliberate change, #25 item 4: it named "robin", a part of the new address, now refused.)
NEW_PASSWORD = "another long passphrase for the bird 3"


@pytest.fixture
def served(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Container]]:
    with served_with_trader(sqlite_template, tmp_path, EMAIL, PASSWORD) as running:
        yield running


def test_signed_in_person_opens_the_confirmation_and_reset_links_and_they_work(
    served: tuple[str, Container],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    origin, container = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.goto(f"{origin}/login")
            page.fill('input[name="email"]', EMAIL)
            page.fill('input[name="password"]', PASSWORD)
            page.click('main button[type="submit"]')
            page.wait_for_url(f"{origin}/security")

            # Ask for a new address; the link arrives; open it in the same, signed-in browser.
            page.fill('input[name="new_email"]', NEW_EMAIL)
            page.fill('form[action="/security/email"] input[name="password"]', PASSWORD)
            page.click('form[action="/security/email"] button[type="submit"]')
            expect(page.locator(".notice")).to_contain_text("Open the link")
            token = link_token(container, NEW_EMAIL, "verify-email")
            page.goto(f"{origin}/verify-email?token={token}")
            page.click("text=Confirm this address")
            expect(page.locator("h1")).to_have_text("Email confirmed")
            page.goto(f"{origin}/security")
            expect(page.locator("main")).to_contain_text(NEW_EMAIL)

            # Still signed in: the forgotten-password form and its link work as well.
            page.goto(f"{origin}/forgot-password")
            page.fill('input[name="email"]', NEW_EMAIL)
            page.click('main button[type="submit"]')
            expect(page.locator("h1")).to_have_text("Check your email")
            token = link_token(container, NEW_EMAIL, "password-reset")
            page.goto(f"{origin}/reset-password?token={token}")
            page.fill('input[name="password"]', NEW_PASSWORD)
            page.click('main button[type="submit"]')
            expect(page.locator("h1")).to_have_text("Password changed")

            # And the new password signs in.
            page.goto(f"{origin}/login")
            page.fill('input[name="email"]', NEW_EMAIL)
            page.fill('input[name="password"]', NEW_PASSWORD)
            page.click('main button[type="submit"]')
            page.wait_for_url(f"{origin}/security")
        finally:
            browser.close()


def test_a_mistyped_address_shows_the_sites_error_page(served: tuple[str, Container]) -> None:
    from playwright.sync_api import expect, sync_playwright

    origin, _ = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            response = page.goto(f"{origin}/securty")
            assert response is not None
            assert response.status == 404
            assert response.headers["content-type"].startswith("text/html")
            expect(page.locator("h1")).to_have_text("Page not found")
            # The way back leads somewhere real.
            page.click("text=Back to the home page")
            page.wait_for_url(f"{origin}/")
            expect(page.locator("h1")).to_have_text("Rampart")
            # The API, asked by a script in the same browser, still answers problem+json.
            answer = page.evaluate(
                "async () => { const r = await fetch('/securty');"
                " return [r.status, r.headers.get('content-type')]; }"
            )
            assert answer == [404, "application/problem+json"]
        finally:
            browser.close()

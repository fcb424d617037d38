"""Two compliance officers in a real headless Chromium on a 390 px phone: each enrols from the
link `rampart users create --role COMPLIANCE` prints and signs in with a security key (a CDP
virtual authenticator). Officer A follows the "Halts" link, halts ACME through the confirmation
and asks to resume, and is offered no approve button; officer B approves and trading resumes.
The forms post with the session's CSRF token, as a browser sends them; the pages fit the phone."""

from __future__ import annotations

from typing import Any

import pytest
from tests.mfa.test_browser import served  # noqa: F401 - the fixture
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.console import sign_in_staff
from tests.web.test_browser_compliance import PHONE, _fits

from rampart.bootstrap import Container
from rampart.simulator.service import ensure_demo_market

pytestmark = pytest.mark.browser


def _signed_in_officer(browser: Any, origin: str, container: Container, email: str) -> Any:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    sign_in_staff(context, page, origin, container, "COMPLIANCE", email)
    return page


def test_two_officers_halt_and_resume_a_symbol_on_a_phone(
    served: tuple[str, Container],  # noqa: F811 - the imported fixture
) -> None:
    from playwright.sync_api import expect, sync_playwright

    origin, container = served
    ensure_demo_market(container.orders, container.uow)
    emails = ("ada.officer@example.com", "ben.officer@example.com")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            a = _signed_in_officer(browser, origin, container, emails[0])
            a.get_by_role("link", name="Halts").click()
            a.wait_for_url(f"{origin}/compliance/halts")
            expect(a.locator("#no-halts")).to_be_visible()
            _fits(a)
            a.get_by_label("one symbol").check()
            a.get_by_label("Symbol or account id").fill("ACME")
            a.get_by_label("Reason").first.fill("news pending")
            a.get_by_role("button", name="Review the halt").click()
            expect(a.locator("h1")).to_have_text("Halt symbol ACME?")
            a.get_by_role("button", name="Halt trading").click()
            a.wait_for_url(f"{origin}/compliance/halts?done=halted")
            row = a.locator('#halts tr[data-target="ACME"]')
            expect(row).to_contain_text("news pending")
            assert "ACME" in container.risk.book.controls.halted_symbols
            _fits(a)

            row.get_by_label("Reason to resume").fill("news out")
            row.get_by_role("button", name="Ask to resume").click()
            a.wait_for_url(f"{origin}/compliance/halts?done=requested")
            queue = a.locator("#resume-queue")
            expect(queue).to_contain_text("You asked")
            expect(queue.get_by_role("button")).to_have_count(0)

            b = _signed_in_officer(browser, origin, container, emails[1])
            b.goto(f"{origin}/compliance/halts")
            b.get_by_role("button", name="Approve and resume trading").click()
            b.wait_for_url(f"{origin}/compliance/halts?done=resumed")
            expect(b.locator("#no-halts")).to_be_visible()
            assert "ACME" not in container.risk.book.controls.halted_symbols
        finally:
            browser.close()

"""A compliance officer in a real headless Chromium on a 390 px phone: enrols from the link
`rampart users create --role COMPLIANCE` prints (password and security key, a CDP virtual
authenticator), signs in with the key, follows the "Audit log" link, finds a trader's order by
its subject, opens the entry and sees its inclusion proof verified; the pages fit the phone."""

from __future__ import annotations

import pytest
from tests.mfa.test_browser import served  # noqa: F401 - the fixture
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.console import sign_in_staff
from tests.trading.support import fund, place

from rampart.bootstrap import Container
from rampart.simulator.service import ensure_demo_market

pytestmark = pytest.mark.browser

OFFICER_EMAIL = "olive.officer@example.com"
PHONE = {"width": 390, "height": 844}
TRADER = "browser-audit-trader"


def _fits(page: object) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    wide = page.evaluate(  # type: ignore[attr-defined]
        "[...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > 390)"
        ".map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 8)"
    )
    assert width <= PHONE["width"], f"the page is {width} px wide on a 390 px phone: {wide}"


def test_an_officer_finds_an_order_and_checks_its_proof_on_a_phone(
    served: tuple[str, Container],  # noqa: F811 - the imported fixture
) -> None:
    from playwright.sync_api import expect, sync_playwright

    origin, container = served
    ensure_demo_market(container.orders, container.uow)
    fund(container, TRADER, "100000")
    order = place(container, TRADER, "buy", "10", "95.50")
    assert order["status"] == "accepted", order
    container.audit_checkpointer.checkpoint()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=PHONE)
            page = context.new_page()
            sign_in_staff(context, page, origin, container, "COMPLIANCE", OFFICER_EMAIL)

            page.get_by_role("link", name="Audit log").click()
            page.wait_for_url(f"{origin}/compliance/audit")
            page.get_by_label("Subject").fill(f"order:{order['id']}")
            page.get_by_label("Action").fill("order.accepted")
            page.get_by_role("button", name="Search").click()
            page.wait_for_url(f"{origin}/compliance/audit?*")
            rows = page.locator("#entries tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text(f"user:{TRADER}")
            _fits(page)

            rows.first.get_by_role("link").click()
            page.wait_for_url(f"{origin}/compliance/audit/*")
            expect(page.locator("#proof-result")).to_have_attribute("data-verified", "yes")
            expect(page.locator("#details")).to_contain_text('"limit_price": "95.50"')
            _fits(page)
        finally:
            browser.close()

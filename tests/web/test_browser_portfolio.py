"""A trader in a real headless Chromium on a 390 px wide phone: signs in, buys on the market page
against a resting offer, and finds the position, the fill and the cash movement on /portfolio,
which fits the phone's width (its wide tables scroll inside their own boxes).
Server and browser as in tests/mfa/test_browser.py: uvicorn on localhost, Debian's Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, served_with_trader
from tests.trading.support import enrol_totp, fund, locate, place

from rampart.bootstrap import Container
from rampart.simulator.service import ensure_demo_market

pytestmark = pytest.mark.browser

EMAIL = "pat.portfolio@example.com"
PASSWORD = "a long and unguessable passphrase 9"
PHONE = {"width": 390, "height": 844}
SELLER = "browser-seller"


@pytest.fixture
def served(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Container]]:
    with served_with_trader(sqlite_template, tmp_path, EMAIL, PASSWORD) as running:
        yield running


def _user_id(container: Container) -> str:
    with container.db.read() as session:
        row = container.identity.accounts.by_email(session, EMAIL)
        assert row is not None
        return str(row.id)


def test_a_trader_buys_and_sees_the_position_on_a_phone(served: tuple[str, Container]) -> None:
    from playwright.sync_api import expect, sync_playwright

    origin, container = served
    ensure_demo_market(container.orders, container.uow)
    user_id = _user_id(container)
    with container.uow() as uow:
        container.ledger.deposit(uow, user_id, "25000")
        uow.commit()
    # Another account offers 10 ACME at 95.50: the trader's buy will fill against it.
    fund(container, SELLER, "100000")
    locate(container, SELLER)
    assert place(container, SELLER, "sell_short", "10", "95.50")["status"] == "accepted"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=PHONE).new_page()
            page.goto(f"{origin}/login")
            page.fill('input[name="email"]', EMAIL)
            page.fill('input[name="password"]', PASSWORD)
            page.click('main button[type="submit"]')
            page.wait_for_url(f"{origin}/security")
            # Trading needs a second factor; enrolled as in the page tests.
            enrol_totp(container, user_id)

            page.goto(f"{origin}/market")
            form = page.locator("form.order-form")
            form.locator('select[name="symbol"]').select_option("ACME")
            form.locator('select[name="side"]').select_option("buy")
            form.locator('input[name="quantity"]').fill("10")
            form.locator('input[name="limit_price"]').fill("95.50")
            form.locator('button[type="submit"]').click()
            page.wait_for_url(f"{origin}/market?order=*")

            page.get_by_role("link", name="Portfolio").click()
            page.wait_for_url(f"{origin}/portfolio")
            expect(page.get_by_role("heading", name="Portfolio", level=1)).to_be_visible()
            position = page.locator('#positions tr[data-symbol="ACME"]')
            expect(position).to_contain_text("10")
            expect(position).to_contain_text("$95.50")
            expect(position).to_contain_text("$955.00")
            expect(page.locator('[data-figure="cash"]')).to_have_text("$24,045.00")
            expect(page.locator('[data-figure="equity"]')).to_have_text("$25,000.00")
            expect(page.locator('#orders tr[data-status="filled"]')).to_have_count(1)
            expect(page.locator("#fills tbody tr")).to_have_count(1)
            expect(page.locator("#activity")).to_contain_text("-$955.00")

            # The order-history filter, used as a person would.
            page.get_by_label("Status").select_option("rejected")
            page.get_by_role("button", name="Show").click()
            page.wait_for_url(f"{origin}/portfolio?status=rejected*")
            expect(page.locator("main")).to_contain_text("No rejected orders.")
            page.get_by_label("Status").select_option("filled")
            page.get_by_role("button", name="Show").click()
            expect(page.locator('#orders tr[data-status="filled"]')).to_have_count(1)

            # It fits the phone: nothing scrolls sideways but the tables inside their boxes.
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the page is {width} px wide on a 390 px phone"
            page.goto(f"{origin}/portfolio")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the page is {width} px wide on a 390 px phone"
            scrolls = page.evaluate(
                "[...document.querySelectorAll('.table-scroll')]"
                ".every(box => getComputedStyle(box).overflowX === 'auto')"
            )
            assert scrolls
        finally:
            browser.close()

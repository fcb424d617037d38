"""A person in a real headless Chromium creates an API key on /keys: the page asks for a step-up
and keeps what was typed, shows the secret once with a copy button, and the shown secret signs
requests the server accepts, from `rampart.client` and from the page's Node.js example.
Server and browser as in tests/web/test_browser_portfolio.py: uvicorn on localhost, Debian's
Chromium, on a 390 px wide phone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, served_with_trader

from rampart.bootstrap import Container
from rampart.client import RampartClient

pytestmark = pytest.mark.browser

EMAIL = "kim.keys@example.com"
PASSWORD = "a long and unguessable passphrase 9"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def served(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Container]]:
    with served_with_trader(sqlite_template, tmp_path, EMAIL, PASSWORD) as running:
        yield running


def _enrol_totp(container: Container) -> pyotp.TOTP:
    """An authenticator app, confirmed with the previous step's code (still accepted), so that
    the current step's code is left for the step-up."""
    with container.db.read() as session:
        row = container.identity.accounts.by_email(session, EMAIL)
        assert row is not None
        user_id = str(row.id)
    with container.uow() as uow:
        enrolment = container.mfa.begin_totp(uow, user_id, EMAIL)
        totp = pyotp.TOTP(enrolment.secret)
        container.mfa.confirm_totp(uow, user_id, totp.at(time.time() - 30)).raise_for_failure()
        uow.commit()
    return totp


def test_a_key_made_on_the_page_signs_requests(
    served: tuple[str, Container], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    origin, container = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=PHONE)
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
            page = context.new_page()
            page.goto(f"{origin}/login")
            page.fill('input[name="email"]', EMAIL)
            page.fill('input[name="password"]', PASSWORD)
            page.click('main button[type="submit"]')
            page.wait_for_url(f"{origin}/security")
            totp = _enrol_totp(container)

            page.get_by_role("link", name="API keys").click()
            page.wait_for_url(f"{origin}/keys")
            page.get_by_label("Name").fill("page bot")
            page.get_by_label("read", exact=True).check()
            page.get_by_role("button", name="Create key").click()
            # The sign-in's factor is not recent: a step-up first, the form kept as typed.
            link = page.get_by_role("link", name="Confirm with your second factor")
            expect(link).to_be_visible()
            expect(page.get_by_label("Name")).to_have_value("page bot")
            link.click()
            page.wait_for_url(f"{origin}/security/step-up?*")
            page.locator('input[name="code"]').first.fill(totp.now())
            page.get_by_role("button", name="Continue").first.click()
            page.wait_for_url(f"{origin}/keys?*")
            expect(page.get_by_label("Name")).to_have_value("page bot")
            expect(page.get_by_label("read", exact=True)).to_be_checked()
            page.get_by_role("button", name="Create key").click()

            expect(page.get_by_role("heading", name="Your new API key")).to_be_visible()
            secret = page.locator("#new-key-secret").inner_text().strip()
            key_id = page.locator("#new-key-id").inner_text().strip()
            assert secret.startswith("rmp_")
            page.get_by_role("button", name="Copy secret").click()
            expect(page.locator(".copied")).to_have_text("Copied.")
            assert page.evaluate("navigator.clipboard.readText()") == secret
            node_example = page.locator("#example-node").inner_text()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the page is {width} px wide on a 390 px phone"

            # Never shown again.
            page.goto(f"{origin}/keys")
            assert secret not in page.content()
            expect(page.locator(f'#keys tr[data-key="{key_id}"]')).to_contain_text("page bot")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the page is {width} px wide on a 390 px phone"
        finally:
            browser.close()

    with RampartClient(origin, key_id=key_id, secret=secret) as bot:
        who = bot.get("/api/v1/apikeys/whoami")
    assert who.status_code == 200, who.text
    assert who.json()["method"] == "apikey"

    node = shutil.which("node")
    if node is None:
        return
    script = tmp_path / "example.js"
    script.write_text(
        node_example.replace("console.log(answer)", "console.log(JSON.stringify(answer))")
    )
    ran = subprocess.run(
        [node, str(script)],
        env={**os.environ, "RAMPART_API_SECRET": secret},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout)
    assert answer["method"] == "apikey", answer
    assert answer["user_id"] == who.json()["user_id"]

"""A real headless Chromium opens the enrolment link `rampart users create --role ADMIN` prints,
sets the password and registers a security key (a CDP virtual authenticator) on the
`/staff/enrol` page, then signs in with password and key and reaches a staff API: the path a new
administrator takes, end to end, with no password-only moment in it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from rampart.bootstrap import Container
from rampart.cli import app
from tests.mfa.test_browser import served  # noqa: F401 - the fixture
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, add_security_key

pytestmark = pytest.mark.browser

ADMIN_EMAIL = "ada@example.com"
ADMIN_PASSWORD = "another long and unguessable passphrase 9"


def _create_admin(container: Container) -> str:
    """`rampart users create --role ADMIN --verified` against the served database: the link it
    prints."""
    settings = container.settings
    env = {
        "RAMPART_PROFILE": "dev",
        "RAMPART_DATA_DIR": str(settings.data_dir),
        "RAMPART_DATABASE_URL": settings.effective_database_url,
        "RAMPART_PUBLIC_URL": settings.effective_public_url,
        "COLUMNS": "400",
    }
    result = CliRunner().invoke(
        # --verified: the operator vouches for the address (otherwise its confirmation email
        # must be followed first: an unconfirmed address withholds the role's permissions).
        app,
        ["users", "create", "--email", ADMIN_EMAIL, "--role", "ADMIN", "--verified"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    links = [w for w in result.stdout.split() if "/staff/enrol?token=" in w]
    assert len(links) == 1, result.stdout
    return links[0]


def test_a_new_admin_enrols_from_the_printed_link_and_signs_in_with_the_key(
    served: tuple[str, Container],  # noqa: F811 - the imported fixture
) -> None:
    from playwright.sync_api import expect, sync_playwright

    origin, container = served
    link = _create_admin(container)
    assert link.startswith(f"{origin}/staff/enrol?token=")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context()
            page = context.new_page()
            cdp, authenticator = add_security_key(context, page)

            # Before enrolment the account has no password: it cannot sign in at all.
            refused = context.request.post(
                f"{origin}/v1/auth/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
            assert refused.status == 401

            # The enrolment page: password and key in one step.
            page.goto(link)
            page.fill("#staff-password", ADMIN_PASSWORD)
            page.click("button[data-staff-enrol]")
            expect(page.locator("#staff-enrol-done")).to_be_visible(timeout=15_000)
            registered = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
            assert len(registered["credentials"]) == 1
            # The link is single-use.
            page.goto(link)
            expect(page.locator("main")).to_contain_text("not valid")

            # Sign in: the password stops at the second factor; the key completes it.
            page.goto(f"{origin}/login")
            page.fill('input[name="email"]', ADMIN_EMAIL)
            page.fill('input[name="password"]', ADMIN_PASSWORD)
            page.click('button[type="submit"]')
            page.wait_for_url(f"{origin}/login/second-factor")
            page.click("#use-security-key")
            page.wait_for_url(f"{origin}/security", timeout=15_000)

            # A staff API answers this session (its permissions count after a key sign-in).
            halts = context.request.get(f"{origin}/v1/risk/halts")
            assert halts.status == 200, halts.text()
            used = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
            assert used["credentials"][0]["signCount"] >= 2
        finally:
            browser.close()

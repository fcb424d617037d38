"""The web console as a whole, for the accessibility test and the screenshots: the list of its
pages by who may see them, a served app seeded so that every page has something to show, and
browser sign-ins for a trader (password, then an authenticator app enrolled through the service)
and staff (each created with `rampart users create`, enrolled from its link with a CDP virtual
security key, then signed in with it).

A new page is one line in `PUBLIC_PAGES`, `TRADER_PAGES` or `STAFF_PAGES` (by role).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from rampart.bootstrap import Container
from rampart.cli import app
from rampart.simulator.service import ensure_demo_market
from rampart.trading.commands import Cancel
from tests.support.browser import add_security_key, served_with_trader
from tests.trading.support import enrol_totp, fund, locate, place


@dataclass(frozen=True)
class ConsolePage:
    """A page of the console: its path, a short name for its screenshot file, and the parts
    that axe-core leaves out (CSS selectors), each with its reason beside it."""

    name: str
    path: str
    axe_exclude: tuple[str, ...] = ()


PUBLIC_PAGES = (
    ConsolePage("home", "/"),
    ConsolePage("login", "/login"),
    ConsolePage("signup", "/signup"),
    ConsolePage("forgot-password", "/forgot-password"),
    ConsolePage("not-found", "/no-such-page"),
    # The operations Swagger UI renders are its own markup (buttons nested in its summary
    # buttons, its grey-on-white method badges): a vendored library, checked upstream, not here.
    # The page around it, and its width on a phone, are checked.
    ConsolePage("api-docs", "/docs", axe_exclude=("#swagger-ui",)),
)
TRADER_PAGES = (
    ConsolePage("market", "/market"),
    ConsolePage("portfolio", "/portfolio"),
    ConsolePage("keys", "/keys"),
    ConsolePage("security", "/security"),
    ConsolePage("security-mfa", "/security/mfa"),
    ConsolePage("step-up", "/security/step-up"),
    ConsolePage("mailbox", "/dev/mailbox"),
)
#: Staff pages by the role that sees them; each role signs in as its own person.
STAFF_PAGES: dict[str, tuple[ConsolePage, ...]] = {
    "COMPLIANCE": (
        ConsolePage("compliance-audit", "/compliance/audit"),
        ConsolePage("compliance-audit-entry", "/compliance/audit/1"),
        ConsolePage("compliance-halts", "/compliance/halts"),
    ),
    "ADMIN": (ConsolePage("admin-users", "/admin/users"),),
}

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}

TRADER_EMAIL = "tess.trader@example.com"
TRADER_PASSWORD = "a long and unguessable passphrase 9"
STAFF_PASSWORD = "another long and unguessable passphrase 9"
SELLER = "console-seller"


@contextmanager
def served_console(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Container]]:
    """The app served with the demo market, a seller's resting offer of 10 ACME and a trader
    (not yet funded: see `sign_in_trader`); yields (origin, container)."""
    with served_with_trader(sqlite_template, tmp_path, TRADER_EMAIL, TRADER_PASSWORD) as running:
        _origin, container = running
        ensure_demo_market(container.orders, container.uow)
        fund(container, SELLER, "100000")
        locate(container, SELLER)
        assert place(container, SELLER, "sell_short", "10", "95.50")["status"] == "accepted"
        yield running


def trader_id(container: Container) -> str:
    with container.db.read() as session:
        row = container.identity.accounts.by_email(session, TRADER_EMAIL)
        assert row is not None
        return str(row.id)


def sign_in_trader(page: Any, origin: str, container: Container) -> None:
    """Sign in with the password, then give the trader a history to show: an authenticator app
    (trading needs a second factor), cash, 10 ACME bought, a resting buy, a rejected one and a
    cancelled one, and a checkpointed audit log."""
    page.goto(f"{origin}/login")
    page.fill('input[name="email"]', TRADER_EMAIL)
    page.fill('input[name="password"]', TRADER_PASSWORD)
    page.click('main button[type="submit"]')
    page.wait_for_url(f"{origin}/security")
    trader = trader_id(container)
    enrol_totp(container, trader)
    fund(container, trader, "25000")
    bought = place(container, trader, "buy", "10", "95.50")
    assert bought["status"] == "filled", bought
    assert place(container, trader, "buy", "5", "94.00")["status"] == "accepted"
    # Outside the price band: rejected, with its reason on the order history.
    assert place(container, trader, "buy", "3", "50.00")["status"] == "rejected"
    resting = place(container, trader, "buy", "3", "93.00")
    assert resting["status"] == "accepted", resting
    container.orders.engine.call(Cancel(trader, f"user:{trader}", resting["id"]))
    container.audit_checkpointer.checkpoint()


def staff_email(role: str) -> str:
    return f"{role.lower()}.staff@example.com"


def staff_enrol_link(container: Container, role: str, email: str | None = None) -> str:
    """Create a staff member of `role` with `rampart users create` and return the enrolment
    link it prints."""
    settings = container.settings
    env = {
        "RAMPART_PROFILE": "dev",
        "RAMPART_DATA_DIR": str(settings.data_dir),
        "RAMPART_DATABASE_URL": settings.effective_database_url,
        "RAMPART_PUBLIC_URL": settings.effective_public_url,
        "COLUMNS": "400",
    }
    result = CliRunner().invoke(
        app,
        ["users", "create", "--email", email or staff_email(role), "--role", role, "--verified"],
        env=env,
    )
    assert result.exit_code == 0, result.output
    links = [w for w in result.stdout.split() if "/staff/enrol?token=" in w]
    assert len(links) == 1, result.stdout
    return links[0]


def sign_in_staff(
    context: Any, page: Any, origin: str, container: Container, role: str, email: str | None = None
) -> None:
    """Create a staff member of `role` with the CLI, enrol them from its link with a virtual
    security key, and sign in with it."""
    add_security_key(context, page)
    page.goto(staff_enrol_link(container, role, email))
    page.fill("#staff-password", STAFF_PASSWORD)
    page.click("button[data-staff-enrol]")
    page.locator("#staff-enrol-done").wait_for(timeout=15_000)
    page.goto(f"{origin}/login")
    page.fill('input[name="email"]', email or staff_email(role))
    page.fill('input[name="password"]', STAFF_PASSWORD)
    page.click('main button[type="submit"]')
    page.wait_for_url(f"{origin}/login/second-factor")
    page.click("#use-security-key")
    page.wait_for_url(f"{origin}/security", timeout=15_000)

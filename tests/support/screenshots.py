"""Screenshots of the console's main pages at desktop (1280 px) and phone (390 px) widths, in
docs/console/, from a freshly served app seeded as the accessibility test seeds it (a trader who
bought 10 ACME and has resting, rejected and cancelled orders; a compliance officer).

    python -m tests.support.screenshots [--out docs/console]

Needs Debian's Chromium and Playwright (as the browser tests do). Each picture is the viewport
only, so that the files stay small; the page list is in tests/support/console.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from rampart.platform.migrate import upgrade
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.console import (
    PUBLIC_PAGES,
    STAFF_PAGES,
    TRADER_PAGES,
    VIEWPORTS,
    ConsolePage,
    served_console,
    sign_in_staff,
    sign_in_trader,
)

ROOT = Path(__file__).resolve().parents[2]
#: The main pages: the ones a person meets first. Any page of the console may be added.
SHOWN = ("home", "login", "market", "portfolio", "keys", "security", "compliance-audit")


def _shoot(page: Any, origin: str, out: Path, pages: tuple[ConsolePage, ...]) -> list[Path]:
    written: list[Path] = []
    for console_page in pages:
        if console_page.name not in SHOWN:
            continue
        for label, viewport in VIEWPORTS.items():
            page.set_viewport_size(viewport)
            page.goto(f"{origin}{console_page.path}")
            page.wait_for_load_state("load")
            path = out / f"{console_page.name}-{label}.png"
            page.screenshot(path=str(path), animations="disabled", caret="hide")
            written.append(path)
    return written


def take(out: Path) -> list[Path]:
    """Serve a seeded console in a temporary directory and photograph its main pages."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rampart-screenshots-") as scratch:
        work = Path(scratch)
        template = work / "template.db"
        upgrade(f"sqlite:///{template}")
        (work / "served").mkdir()
        with (
            served_console(template, work / "served") as (origin, container),
            sync_playwright() as playwright,
        ):
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                public = browser.new_context().new_page()
                written = _shoot(public, origin, out, PUBLIC_PAGES)
                trader = browser.new_context().new_page()
                sign_in_trader(trader, origin, container)
                written += _shoot(trader, origin, out, TRADER_PAGES)
                for role, pages in STAFF_PAGES.items():
                    staff_context = browser.new_context()
                    staff = staff_context.new_page()
                    sign_in_staff(staff_context, staff, origin, container, role)
                    written += _shoot(staff, origin, out, pages)
            finally:
                browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    arguments = parser.parse_args(argv)
    for path in take(arguments.out):
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

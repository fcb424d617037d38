"""Every page of the console, public, a trader's and staff's (each role), in a real headless
Chromium at desktop (1280 px) and phone (390 px) widths: axe-core finds no serious or critical
accessibility violation, and nothing scrolls sideways.

axe-core (tests/support/vendor/axe.min.js, see data/SOURCES.md) is evaluated in the page through
the DevTools protocol, which the page's CSP does not govern: the pages are checked with their
production CSP unchanged. The list of pages is in tests/support/console.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
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

from rampart.bootstrap import Container

pytestmark = pytest.mark.browser

AXE_FILE = Path(__file__).parents[1] / "support" / "vendor" / "axe.min.js"
#: As recorded in data/SOURCES.md: the file is the registry's, byte for byte.
AXE_SHA256 = "29348999450cdf2849a8e70b7912fc2da85a849da39c0d0d5394f51d4a9ed95c"
AXE = AXE_FILE.read_text()
#: Impacts that fail the test; "moderate" and "minor" ones are reported by axe but allowed.
BLOCKING = {"serious", "critical"}


@pytest.fixture
def served(sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[str, Container]]:
    with served_console(sqlite_template, tmp_path) as running:
        yield running


def test_the_vendored_axe_core_is_the_recorded_file() -> None:
    assert hashlib.sha256(AXE_FILE.read_bytes()).hexdigest() == AXE_SHA256


def _violations(page: Any, exclude: tuple[str, ...]) -> list[str]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE)
    result = page.evaluate(
        "async (exclude) => {"
        " const r = await axe.run({include: [document], exclude: exclude.map(s => [s])});"
        " return {passes: r.passes.length, violations: r.violations}; }",
        list(exclude),
    )
    assert result["passes"] > 0, "axe-core checked nothing"
    found = result["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + "; ".join(" ".join(n["target"]) for n in v["nodes"][:5])
        for v in found
        if v["impact"] in BLOCKING
    ]


def _overflow(page: Any, width: int) -> str | None:
    scroll = int(page.evaluate("document.documentElement.scrollWidth"))
    if scroll <= width:
        return None
    wide = page.evaluate(
        f"[...document.querySelectorAll('body *')]"
        f".filter(e => e.getBoundingClientRect().right > {width})"
        ".map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 6)"
    )
    return f"{scroll} px wide: {wide}"


def _check(page: Any, origin: str, pages: tuple[ConsolePage, ...]) -> list[str]:
    """Visit each page at each width; the problems found, one line each."""
    problems: list[str] = []
    for console_page in pages:
        for label, viewport in VIEWPORTS.items():
            page.set_viewport_size(viewport)
            page.goto(f"{origin}{console_page.path}")
            where = f"{console_page.path} at {label} ({viewport['width']} px)"
            assert page.url.split("?")[0] == f"{origin}{console_page.path}", (
                f"{where}: landed on {page.url}"
            )
            problems += [f"{where}: {v}" for v in _violations(page, console_page.axe_exclude)]
            overflow = _overflow(page, viewport["width"])
            if overflow:
                problems.append(f"{where}: {overflow}")
    return problems


def test_every_console_page_is_accessible_and_fits_a_phone(
    served: tuple[str, Container],
) -> None:
    from playwright.sync_api import sync_playwright

    origin, container = served
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            public = browser.new_context().new_page()
            problems = _check(public, origin, PUBLIC_PAGES)
            # The checker is not blind: a field without a label, added to a page, is caught.
            public.goto(f"{origin}/login")
            public.evaluate(
                "document.querySelector('main').append(document.createElement('select'))"
            )
            assert any(v.startswith("select-name (critical)") for v in _violations(public, ())), (
                "axe-core did not see an unlabelled field"
            )

            trader = browser.new_context().new_page()
            sign_in_trader(trader, origin, container)
            problems += _check(trader, origin, TRADER_PAGES)

            for role, pages in STAFF_PAGES.items():
                staff_context = browser.new_context()
                staff = staff_context.new_page()
                sign_in_staff(staff_context, staff, origin, container, role)
                problems += _check(staff, origin, pages)
        finally:
            browser.close()
    assert not problems, "\n".join(problems)

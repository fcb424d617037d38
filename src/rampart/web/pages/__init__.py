"""Server-rendered pages (Jinja2, autoescaped, no CDN) and their static files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from rampart.platform.http.access import public
from rampart.platform.http.problems import use_problem_pages
from rampart.web.pages.templating import STATIC_DIR

if TYPE_CHECKING:
    from rampart.bootstrap import Container


def mount_pages(app: FastAPI, container: Container) -> None:
    """The home and market pages, the account pages, the dev mailbox (dev profile only),
    `/static`, and the error page people's browsers get instead of problem+json."""
    from rampart.web.pages import (
        account,
        admin,
        compliance,
        compliance_risk,
        errors,
        keys,
        mailbox,
        market,
        mfa,
        portfolio,
    )

    app.include_router(account.router)
    app.include_router(mfa.router)
    # The home page `/` and the market page `/market`.
    app.include_router(market.router)
    # The trader's portfolio `/portfolio`.
    app.include_router(portfolio.router)
    # The compliance console's audit search, entry and proof pages `/compliance/audit`.
    app.include_router(compliance.router)
    # The admin console's user pages `/admin/users`.
    app.include_router(admin.router)
    # Halts, the kill switch and the four-eyes resume queue `/compliance/halts`.
    app.include_router(compliance_risk.router)
    # The API keys page `/keys`.
    app.include_router(keys.router)
    if container.settings.profile == "dev":
        app.include_router(mailbox.router)

    async def to_login(_request: Request, _exc: Exception) -> Response:
        return RedirectResponse("/login", status_code=303)

    app.add_exception_handler(account.SignInRequired, to_login)
    use_problem_pages(app, errors.problem_page)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # Pages link `/static/favicon.svg`; browsers still ask for `/favicon.ico` on their own (and
    # for any response that is not a page), so it answers too rather than logging 404s.
    @app.get("/favicon.ico", include_in_schema=False, dependencies=[Depends(public)])
    def favicon() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "favicon.svg",
            media_type="image/svg+xml",
            headers={"Cache-Control": "public, max-age=86400"},
        )

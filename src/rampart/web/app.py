"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from rampart import __version__
from rampart.bootstrap import Container, bootstrap
from rampart.platform.http.access import check_routes_declare_access
from rampart.platform.http.middleware import EdgeMiddleware
from rampart.platform.http.problems import install_problem_handlers
from rampart.platform.http.services import bind_services
from rampart.platform.migrate import assert_migrated
from rampart.web.contract import install_contract
from rampart.web.docs import mount_docs
from rampart.web.health import router as health_router
from rampart.web.pages import mount_pages
from rampart.web.routing import index_routes
from rampart.web.wiring import bound_services


def create_app(container: Container | None = None, *, check_schema: bool = True) -> FastAPI:
    """Build the app around `container` (bootstrapped from the environment when not given).

    Refuses, by raising, to build an app on a database whose schema is not at the current version,
    or with a route that declares neither `public` nor a permission.
    """
    container = container or bootstrap()
    if check_schema:
        assert_migrated(container.db.engine, container.db.url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        container.start()
        try:
            yield
        finally:
            container.close()

    settings = container.settings
    docs = settings.api_docs_enabled
    app = FastAPI(
        title="Rampart",
        version=__version__,
        summary="A security-first trading platform core",
        docs_url=None,
        redoc_url=None,
        # Off (404) unless `api_docs` turns it on, which production does not by default.
        openapi_url="/openapi.json" if docs else None,
        lifespan=lifespan,
    )
    # The console pages and the tests read the container; the routers only their bound slots.
    app.state.container = container
    bind_services(app, bound_services(container))
    install_problem_handlers(app)
    app.include_router(health_router)
    if docs:
        mount_docs(app)
    mount_pages(app, container)
    for router in domain_routers(container):
        app.include_router(router)
    check_routes_declare_access(app)
    install_contract(app)
    index_routes(app)
    app.add_middleware(
        EdgeMiddleware,
        max_body_bytes=settings.max_body_bytes,
        trusted_proxies=settings.trusted_proxies,
        hsts=settings.profile == "production",
    )
    return app


def domain_routers(container: Container) -> list[APIRouter]:
    """Each domain's HTTP router, in the order their paths should appear in the docs."""
    from rampart.access.routes import router as access_router
    from rampart.apikeys.api import router as apikeys_router
    from rampart.audit.api import router as audit_router
    from rampart.identity.admin_api import router as identity_admin_router
    from rampart.identity.api import router as identity_router
    from rampart.identity.mfa.api import router as mfa_router
    from rampart.identity.mfa.login_api import router as mfa_login_router
    from rampart.identity.mfa.recovery_api import router as mfa_recovery_router
    from rampart.identity.mfa.staff import router as staff_router
    from rampart.identity.mfa.webauthn_api import router as mfa_webauthn_router
    from rampart.risk.api import account_router as risk_account_router
    from rampart.risk.api import router as risk_router
    from rampart.trading.api import router as trading_router

    return [
        identity_router,
        identity_admin_router,
        mfa_router,
        mfa_webauthn_router,
        mfa_login_router,
        mfa_recovery_router,
        staff_router,
        access_router,
        apikeys_router,
        trading_router,
        risk_router,
        risk_account_router,
        audit_router,
    ]

"""API documentation served from this process: Swagger UI 5 (it renders OpenAPI 3.1), vendored
under `static/vendor/swagger-ui/` (version, source and checksum in data/SOURCES.md).

No page of ours loads script from a CDN: anything that runs on this origin could act with the
user's session. The page has no inline script either: `static/api-docs.js` starts Swagger UI,
so the CSP needs no exception for it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import HTMLResponse

from rampart.platform.http.access import public

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])

SWAGGER_UI = "/static/vendor/swagger-ui"

_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Rampart API</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="{SWAGGER_UI}/swagger-ui.css"></head>
<body><main id="swagger-ui" data-openapi-url="/openapi.json"></main>
<script src="{SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script>
</body></html>"""


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui() -> HTMLResponse:
    return HTMLResponse(_PAGE)


def mount_docs(app: FastAPI) -> None:
    """`/docs` (the assets are under `/static`, mounted with the pages)."""
    app.include_router(router)

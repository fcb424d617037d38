"""API documentation served from this process: Swagger UI assets ship in a Python package.

No page of ours loads script from a CDN: anything that runs on this origin could act with the
user's session.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from rampart.platform.http.access import public

router = APIRouter(include_in_schema=False, dependencies=[Depends(public)])


def _swagger_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    nonce = request.scope["state"]["csp_nonce"]
    config = json.dumps({"url": "/openapi.json", "dom_id": "#swagger-ui"})
    html = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rampart API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script nonce="{nonce}">window.ui = SwaggerUIBundle({config});</script>
</body></html>"""
    return HTMLResponse(html)


def mount_docs(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/docs/static", StaticFiles(directory=_swagger_dir()), name="docs-static")

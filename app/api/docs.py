"""Swagger UI at /docs and ReDoc at /redoc from assets this server serves (fastapi-offline's copies), no CDN."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.S)


def _pages(app: FastAPI) -> tuple[bytes, bytes]:
    """The two pages' HTML; it depends only on the app's title and schema URL, so it is built once."""
    openapi_url = app.openapi_url or "/openapi.json"
    swagger = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    ).body
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    ).body
    return bytes(swagger), bytes(redoc)


def inline_script_hashes(app: FastAPI) -> list[str]:
    """CSP sources (`'sha256-...'`) for the inline scripts of the docs pages (Swagger UI's start-up call)."""
    hashes = []
    for page in _pages(app):
        for script in _INLINE_SCRIPT.findall(page):
            hashes.append("'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'")
    return hashes


def install_docs(app: FastAPI) -> None:
    """Serve the assets and the two pages (create the app with docs_url=None, redoc_url=None)."""
    swagger, redoc = _pages(app)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger)

    @app.get("/redoc", include_in_schema=False)
    async def redoc_ui() -> HTMLResponse:
        return HTMLResponse(redoc)

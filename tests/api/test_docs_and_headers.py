"""/docs and /redoc work offline (assets served by this server), and every response carries security headers."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import httpx
import pytest

from app.db.engine import create_engine
from app.db.migrate import upgrade_to_head

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


@pytest.fixture
async def db_url(tmp_path: Path) -> str:
    """SQLite only: nothing here depends on the database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'docs.db'}"
    engine = create_engine(url)
    await upgrade_to_head(engine)
    await engine.dispose()
    return url


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_reference_only_assets_this_server_serves(client: httpx.AsyncClient, page: str) -> None:
    html = await client.get(page)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assets = ASSET.findall(html.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    assert "http://" not in html.text and "https://" not in html.text
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset
        expected = "javascript" if asset.endswith(".js") else "css" if asset.endswith(".css") else "image/"
        assert expected in response.headers["content-type"], (asset, response.headers["content-type"])
        assert len(response.content) > 100
    spec = await client.get("/openapi.json")
    assert spec.status_code == 200 and spec.json()["info"]["title"] == "whisper-service"


@pytest.mark.parametrize("path", ["/", "/docs", "/redoc", "/health", "/v1/tasks/nope", "/web/app.js", "/no-such"])
async def test_security_headers_on_every_response(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    csp = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert csp["frame-ancestors"] == "'none'" and csp["default-src"] == "'self'" and csp["object-src"] == "'none'"
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]


async def test_the_csp_allows_exactly_the_docs_inline_script(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    csp = (await client.get("/docs")).headers["content-security-policy"]
    for script in INLINE_SCRIPT.findall(html):
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp

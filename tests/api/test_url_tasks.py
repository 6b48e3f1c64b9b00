"""file_url tasks: the worker fetches the media from a real HTTP server on loopback."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.api.test_task_lifecycle import wait_status
from tests.fakes import FakeEngine

ALLOW_LOOPBACK = {"allowed_hosts": ["127.0.0.1"]}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """The API accepts loopback URLs; each test decides what the worker allows."""
    return make_settings(**ALLOW_LOOPBACK)


async def create(client: httpx.AsyncClient, url: str) -> str:
    response = await client.post("/v1/tasks", json={"file_url": url})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize("path", ["/jfk.wav", "/redirect"])
async def test_url_task_is_fetched_and_transcribed(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]], media_server: str, path: str
) -> None:
    task_id = await create(client, media_server + path)
    await run_worker(FakeEngine(segment_seconds=11.0), **ALLOW_LOOPBACK)
    done = await wait_status(client, task_id, "completed", "failed")
    assert done["status"] == "completed", done["error"]
    assert done["duration"] == pytest.approx(11.0) and done["result"]["text"] == "segment 0."


@pytest.mark.parametrize(
    ("path", "overrides", "error_type"),
    [
        ("/jfk.wav", {"allowed_hosts": []}, "URLNotAllowed"),  # the worker resolves it: loopback, not allowlisted
        ("/to-loopback", ALLOW_LOOPBACK, "URLNotAllowed"),  # a redirect is checked like the first URL
        ("/page-to-loopback.html", ALLOW_LOOPBACK, "URLNotAllowed"),  # so is the media link yt-dlp finds
        ("/missing.mp3", ALLOW_LOOPBACK, "MediaFetchFailed"),
        ("/text", ALLOW_LOOPBACK, "UnsupportedMedia"),
        ("/jfk.wav", {**ALLOW_LOOPBACK, "max_upload_bytes": 10_000}, "UploadTooLarge"),
    ],
)
async def test_url_task_failures_are_recorded(
    client: httpx.AsyncClient,
    run_worker: Callable[..., Awaitable[Any]],
    media_server: str,
    path: str,
    overrides: dict[str, Any],
    error_type: str,
) -> None:
    task_id = await create(client, media_server + path)
    engine = FakeEngine()
    await run_worker(engine, **overrides)
    failed = await wait_status(client, task_id, "failed", "completed")
    assert failed["status"] == "failed" and failed["error"]["type"] == error_type, failed["error"]
    assert failed["error"]["message"]
    assert engine.calls == []


async def test_a_page_link_is_fetched_through_yt_dlp(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]], media_server: str
) -> None:
    task_id = await create(client, f"{media_server}/page.html")
    await run_worker(FakeEngine(segment_seconds=11.0), **ALLOW_LOOPBACK)
    done = await wait_status(client, task_id, "completed", "failed")
    assert done["status"] == "completed", done["error"]
    assert done["duration"] == pytest.approx(11.0)
    assert done["source_meta"]["title"].startswith("JFK inaugural")
    assert done["source_meta"]["webpage_url"] == f"{media_server}/page.html"

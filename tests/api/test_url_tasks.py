"""file_url tasks: the worker fetches the media from a real HTTP server on loopback."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.api.test_task_lifecycle import wait_status
from tests.audio import clip
from tests.fakes import FakeEngine

ALLOW_LOOPBACK = {"allowed_hosts": ["127.0.0.1"]}


class MediaHandler(BaseHTTPRequestHandler):
    """/jfk.wav, /redirect (to /jfk.wav), pages, redirects and links to 127.0.0.2, /text; anything else 404."""

    def do_GET(self) -> None:
        if self.path == "/jfk.wav":
            body = clip("jfk.wav").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/jfk.wav")
            self.end_headers()
        elif self.path == "/page.html":
            body = b'<html><head><title>JFK inaugural</title></head><body><audio src="/jfk.wav"></audio></body></html>'
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/to-loopback":  # another loopback address, which is not allowlisted
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{self.server.server_address[1]}/jfk.wav")
            self.end_headers()
        elif self.path == "/page-to-loopback.html":
            body = (
                f'<html><body><audio src="http://127.0.0.2:{self.server.server_address[1]}/jfk.wav"></audio>'.encode()
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/text":
            body = b"<html>not media</html>" * 100
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """The API accepts loopback URLs; each test decides what the worker allows."""
    return make_settings(**ALLOW_LOOPBACK)


@pytest.fixture
def media_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), MediaHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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

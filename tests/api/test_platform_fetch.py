"""Page links through yt-dlp end to end: fetched under the outbound policy, transcribed, failures in our own words."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from app import errors
from app.services import media
from app.settings import Settings
from tests.api.test_task_lifecycle import wait_status
from tests.audio import reference, wer
from tests.fakes import FakeEngine
from tests.media_server import Listener, TrickleHandler
from workers.engine import FasterWhisperEngine

# What these tests drive (a foreign API's translation, fetching, signing) does not depend on the database kind; the
# queue, storage and API tests run on each (tests/integration, tests/e2e, tests/api/test_create_task.py and others).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

ALLOW_LOOPBACK = {"allowed_hosts": ["127.0.0.1"]}  # a single address: 127.0.0.2 stays forbidden
StartWorker = Callable[..., Awaitable[Any]]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """The API and the worker allow 127.0.0.1 only. A long lease: only the worker itself can end a task here
    (an expired lease would let the reaper do it)."""
    return make_settings(**ALLOW_LOOPBACK, lease_seconds=600.0)


@pytest.fixture
def forbidden() -> Iterator[Listener]:
    """A listener the outbound policy forbids (127.0.0.2 is not allowlisted)."""
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture
def trickle_server() -> Iterator[str]:
    """Base URL of a loopback server that answers one byte at a time (see TrickleHandler)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), TrickleHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def create(client: httpx.AsyncClient, url: str, platform: str | None = "youtube") -> str:
    body: dict[str, Any] = {"file_url": url} | ({"platform": platform} if platform else {})
    response = await client.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    expected = "platform" if platform else "url"
    assert response.json()["source"] == expected
    return str(response.json()["id"])


@pytest.mark.model
async def test_a_platform_page_is_fetched_and_transcribed_by_the_real_model(
    client: httpx.AsyncClient, run_worker: StartWorker, media_server: str, real_engine: FasterWhisperEngine
) -> None:
    task_id = await create(client, f"{media_server}/video-page.html")
    await run_worker(real_engine, **ALLOW_LOOPBACK)
    done = await wait_status(client, task_id, "completed", "failed", timeout=300)
    assert done["status"] == "completed", done["error"]
    assert wer(reference("jfk.wav"), done["result"]["text"]) < 0.1, done["result"]["text"]
    assert done["platform"] == "youtube" and done["source_meta"]["title"].startswith("JFK video")


@pytest.mark.parametrize(
    ("path", "platform", "error_type", "advice"),
    [
        ("/no-media.html", "youtube", "NoMediaOnPage", "link"),
        ("/hls-page.html", "youtube", "StreamOnlyMedia", "direct media link"),
        ("/missing.html", "youtube", "MediaFetchFailed", "link"),
        ("/garbage-page.html", "youtube", "UnsupportedMedia", "format"),
        ("/garbage.mp3", "youtube", "UnsupportedMedia", "format"),
        ("/garbage.mp3", None, "UnsupportedMedia", "format"),
        ("/no-media.html", None, "NoMediaOnPage", "link"),
    ],
)
async def test_fetch_and_decode_failures_are_our_own_errors(
    client: httpx.AsyncClient,
    run_worker: StartWorker,
    media_server: str,
    path: str,
    platform: str | None,
    error_type: str,
    advice: str,
) -> None:
    task_id = await create(client, media_server + path, platform)
    engine = FakeEngine()
    await run_worker(engine, **ALLOW_LOOPBACK)
    failed = await wait_status(client, task_id, "failed", "completed")
    assert failed["status"] == "failed" and failed["error"]["type"] == error_type, failed["error"]
    assert issubclass(getattr(errors, error_type), errors.AppError)
    message = failed["error"]["message"]
    assert advice in message and "ERROR:" not in message and "yt-dlp" not in message.lower(), message
    assert engine.calls == []


@pytest.mark.parametrize("platform", ["youtube", None])
@pytest.mark.parametrize("page", ["/page-to-forbidden-redirect.html", "/page-to-forbidden.html", "/forbidden-redirect"])
async def test_a_page_cannot_lead_the_fetch_to_a_forbidden_address(
    client: httpx.AsyncClient,
    run_worker: StartWorker,
    media_server: str,
    forbidden: Listener,
    page: str,
    platform: str | None,
) -> None:
    task_id = await create(client, f"{media_server}{page}?forbidden={forbidden.port}", platform)
    engine = FakeEngine()
    await run_worker(engine, **ALLOW_LOOPBACK)
    failed = await wait_status(client, task_id, "failed", "completed")
    assert failed["status"] == "failed" and failed["error"]["type"] == "URLNotAllowed", failed["error"]
    assert "127.0.0.2" in failed["error"]["message"]
    assert forbidden.accepted == 0
    assert engine.calls == []


@pytest.mark.parametrize(("path", "platform"), [("/trickle.wav", None), ("/trickle.html", "youtube")])
async def test_a_trickling_fetch_ends_at_the_deadline(
    client: httpx.AsyncClient, run_worker: StartWorker, trickle_server: str, path: str, platform: str | None
) -> None:
    task_id = await create(client, trickle_server + path, platform)
    await run_worker(FakeEngine(), **ALLOW_LOOPBACK, fetch_timeout_seconds=1.0)
    failed = await wait_status(client, task_id, "failed", "completed")
    assert failed["status"] == "failed" and failed["error"]["type"] == "FetchTimedOut", failed["error"]
    assert "WHISPER_FETCH_TIMEOUT_SECONDS" in failed["error"]["message"]


@pytest.mark.parametrize(("path", "platform"), [("/trickle.wav", None), ("/trickle.html", "youtube")])
async def test_cancel_stops_a_trickling_fetch(
    client: httpx.AsyncClient, run_worker: StartWorker, trickle_server: str, path: str, platform: str | None
) -> None:
    task_id = await create(client, trickle_server + path, platform)
    await run_worker(FakeEngine(), **ALLOW_LOOPBACK)
    await wait_status(client, task_id, "running")
    assert (await client.post(f"/v1/tasks/{task_id}/cancel")).status_code == 200
    done = await wait_status(client, task_id, "cancelled", "failed", "completed")
    assert done["status"] == "cancelled", done["error"]  # recorded by the worker once it let go (the lease is long)


async def test_fetched_media_is_decoded_without_reading_it_back(
    client: httpx.AsyncClient, run_worker: StartWorker, media_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker stores what it fetched (for retries) but decodes its own copy, not the database's."""

    async def no_read_back(**_: Any) -> bytes:
        raise AssertionError("the fetched media was read back from the database")

    monkeypatch.setattr(media, "load_media", no_read_back)
    task_id = await create(client, f"{media_server}/jfk.wav", None)
    await run_worker(FakeEngine(segment_seconds=11.0), **ALLOW_LOOPBACK)
    done = await wait_status(client, task_id, "completed", "failed")
    assert done["status"] == "completed", done["error"]
    assert done["duration"] == pytest.approx(11.0)

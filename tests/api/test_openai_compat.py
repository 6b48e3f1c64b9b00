"""The official `openai` package, unchanged, against a real uvicorn server on loopback; plus API keys."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import uvicorn
from openai import AsyncOpenAI
from sqlalchemy import select

from app.db.models import Task
from app.main import create_app
from app.schemas.transcript import Segment, Transcript
from app.settings import Settings
from tests.audio import clip, reference, wer
from tests.conftest import wait_for
from workers.engine import EngineInfo, FasterWhisperEngine, TranscriptionRequest

# What these tests drive (a foreign API's translation, fetching, signing) does not depend on the database kind; the
# queue, storage and API tests run on each (tests/integration, tests/e2e, tests/api/test_create_task.py and others).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

KEYS = ["alice:alice-secret-key", "bob:bob-secret-key", "admin:admin-secret-key"]
SRT_CUE = re.compile(r"(\d+)\n(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)\n(.+?)\n(?:\n|$)", re.S)
VTT_CUE = re.compile(r"(\d\d:\d\d:\d\d\.\d\d\d) --> (\d\d:\d\d:\d\d\.\d\d\d)\n(.+?)\n(?:\n|$)", re.S)


def _seconds(stamp: str) -> float:
    h, m, s = stamp.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """uvicorn with the app on a free loopback port, in a thread."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def server_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(api_keys=KEYS)


@pytest.fixture
async def base_url(server_settings: Settings, sessions: Any) -> AsyncIterator[str]:
    with serve(server_settings) as url:
        yield url


@pytest.fixture
async def with_worker(run_worker: Callable[..., Awaitable[Any]], real_engine: FasterWhisperEngine) -> None:
    await run_worker(real_engine)


@pytest.fixture
async def client() -> AsyncIterator[Callable[..., AsyncOpenAI]]:
    """Make official SDK clients pointed at a test server; all are closed afterwards."""
    made: list[AsyncOpenAI] = []

    def make(base_url: str, key: str = "alice-secret-key") -> AsyncOpenAI:
        made.append(AsyncOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=120))
        return made[-1]

    yield make
    for api in made:
        await api.close()


@pytest.mark.model
async def test_every_response_format(base_url: str, with_worker: None, client: Callable[..., AsyncOpenAI]) -> None:
    api = client(base_url)
    with clip("jfk.wav").open("rb") as f:
        data = f.read()
    as_json = await api.audio.transcriptions.create(model="whisper-1", file=("jfk.wav", data))
    assert wer(reference("jfk.wav"), as_json.text) <= 0.25

    text = await api.audio.transcriptions.create(model="whisper-1", file=("jfk.wav", data), response_format="text")
    assert wer(reference("jfk.wav"), str(text)) <= 0.25

    srt = str(await api.audio.transcriptions.create(model="base", file=("jfk.wav", data), response_format="srt"))
    cues = SRT_CUE.findall(srt)
    assert cues and [int(c[0]) for c in cues] == list(range(1, len(cues) + 1))
    assert all(_seconds(c[1]) <= _seconds(c[2]) <= min(11.0, _seconds(c[1]) + 7) for c in cues)
    assert all(len(c[3].split("\n")) <= 2 and max(map(len, c[3].split("\n"))) <= 42 for c in cues)
    assert " ".join(" ".join(c[3].split()) for c in cues) == " ".join(as_json.text.split())
    assert wer(reference("jfk.wav"), " ".join(c[3] for c in cues)) <= 0.25

    vtt = str(await api.audio.transcriptions.create(model="whisper-1", file=("jfk.wav", data), response_format="vtt"))
    assert vtt.startswith("WEBVTT\n\n") and VTT_CUE.findall(vtt)

    verbose = await api.audio.transcriptions.create(
        model="whisper-1",
        file=("jfk.wav", data),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert verbose.language == "en" and verbose.duration == pytest.approx(11.0)
    assert verbose.segments and verbose.words
    assert wer(reference("jfk.wav"), " ".join(w.word for w in verbose.words)) <= 0.25
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts) and all(0 <= w.start <= w.end <= verbose.duration for w in verbose.words)
    segment_only = await api.audio.transcriptions.create(
        model="whisper-1", file=("jfk.wav", data), response_format="verbose_json"
    )
    assert segment_only.segments and segment_only.words is None


@pytest.mark.model
async def test_identical_requests_reuse_the_result_unless_dedupe_is_off(
    base_url: str, with_worker: None, client: Callable[..., AsyncOpenAI], sessions: Any
) -> None:
    api = client(base_url)
    data = clip("librivox_0880.wav").read_bytes()
    texts = [
        (await api.audio.transcriptions.create(model="whisper-1", file=("a.wav", data), **extra)).text
        for extra in ({}, {}, {"extra_body": {"dedupe": "false"}})
    ]
    assert texts[0] == texts[1] == texts[2] and wer(reference("librivox_0880.wav"), texts[0]) <= 0.25
    async with sessions() as session:
        rows = (await session.execute(select(Task.reused_from).order_by(Task.created_at))).scalars().all()
    first, second, third = rows
    assert first is None and second is not None and third is None  # the second reused the first's result


@pytest.mark.model
async def test_translation_returns_english(
    base_url: str, with_worker: None, client: Callable[..., AsyncOpenAI]
) -> None:
    api = client(base_url)
    with pytest.warns(DeprecationWarning):  # this SDK release marks the translations endpoint deprecated
        result = await api.audio.translations.create(
            model="whisper-1", file=("noservice.wav", clip("es_asterisk_ss-noservice.wav").read_bytes())
        )
    english = "The number you have dialed is out of service. Please check the number and try again."
    assert wer(english, result.text) <= 0.5, result.text


class HeldAfterFirstSegment:
    """The real engine; once armed, a decode is held after its first segment until the test releases it."""

    def __init__(self, engine: FasterWhisperEngine) -> None:
        self.engine = engine
        self.armed = False
        self.holding = threading.Event()
        self.release = threading.Event()
        self.held_until_released = False

    def describe(self) -> EngineInfo:
        return self.engine.describe()

    def unload_idle(self) -> list[str]:
        return self.engine.unload_idle()

    def transcribe(
        self,
        audio: np.ndarray,
        request: TranscriptionRequest,
        *,
        on_segment: Callable[[Segment], None],
        should_stop: Callable[[], bool],
    ) -> Transcript:
        def hold(segment: Segment) -> None:
            on_segment(segment)
            if self.armed and not self.holding.is_set():
                self.holding.set()
                self.held_until_released = self.release.wait(timeout=120)

        return self.engine.transcribe(audio, request, on_segment=hold, should_stop=should_stop)


@pytest.mark.model
async def test_streaming_yields_segments_then_the_same_text(
    base_url: str,
    run_worker: Callable[..., Awaitable[Any]],
    real_engine: FasterWhisperEngine,
    client: Callable[..., AsyncOpenAI],
) -> None:
    engine = HeldAfterFirstSegment(real_engine)
    await run_worker(engine)
    api = client(base_url)
    data = clip("long_en.flac").read_bytes()  # 110 s: four or more windows, each streamed as it is decoded
    plain = await api.audio.transcriptions.create(model="whisper-1", file=("c.wav", data), language="en")
    engine.armed = True
    deltas: list[str] = []
    done_text, first_while_held = "", False
    events = await api.audio.transcriptions.create(model="whisper-1", file=("c.wav", data), language="en", stream=True)
    async for event in events:
        if event.type == "transcript.text.delta":
            if not deltas:  # the rest of the audio is not decoded until this first piece reached the client
                first_while_held = engine.holding.is_set() and not engine.release.is_set()
                engine.release.set()
            deltas.append(event.delta)
        elif event.type == "transcript.text.done":
            done_text = event.text
    assert done_text == plain.text
    assert "".join(deltas).strip() == done_text
    assert len(deltas) >= 3
    assert first_while_held and engine.held_until_released, "segments arrive as they are transcribed"


async def test_errors_map_to_the_sdk_exceptions(
    base_url: str, server_settings: Settings, client: Callable[..., AsyncOpenAI]
) -> None:
    data = clip("jfk.wav").read_bytes()
    with pytest.raises(openai.AuthenticationError):
        await client(base_url, key="wrong-key-123").audio.transcriptions.create(model="whisper-1", file=("a.wav", data))
    with pytest.raises(openai.NotFoundError) as missing:
        await client(base_url).audio.transcriptions.create(model="gpt-9-audio", file=("a.wav", data))
    assert missing.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        await client(base_url).audio.transcriptions.create(
            model="whisper-1",
            file=("a.wav", data),
            response_format="docx",  # type: ignore[arg-type]
        )
    assert bad.value.body["param"] == "response_format"  # type: ignore[index]
    with pytest.raises(openai.APIStatusError) as unsupported:
        await client(base_url).audio.transcriptions.create(model="whisper-1", file=("a.txt", b"not audio at all" * 10))
    assert unsupported.value.status_code == 415 and unsupported.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    # A damaged file is 422 on /v1/tasks but 400 here, as OpenAI answers invalid files (README, "Limits").
    with pytest.raises(openai.BadRequestError) as truncated:
        await client(base_url).audio.transcriptions.create(model="whisper-1", file=("a.wav", data[: len(data) // 3]))
    assert truncated.value.status_code == 400 and truncated.value.body["code"] == "UnreadableMedia"  # type: ignore[index]
    assert "truncated" in truncated.value.body["message"]  # type: ignore[index]
    models = await client(base_url).models.list()
    assert {"whisper-1", "base", "tiny.en"} <= {m.id for m in models.data}
    assert (await client(base_url).models.retrieve("tiny.en")).id == "tiny.en"
    with pytest.raises(openai.NotFoundError):
        await client(base_url).models.retrieve("nope")


async def test_too_large_upload_is_413(
    make_settings: Callable[..., Settings], sessions: Any, client: Callable[..., AsyncOpenAI]
) -> None:
    with (
        serve(make_settings(api_keys=KEYS, max_upload_bytes=100_000)) as url,
        pytest.raises(openai.APIStatusError) as info,
    ):
        await client(url).audio.transcriptions.create(model="whisper-1", file=("a.wav", clip("jfk.wav").read_bytes()))
    assert info.value.status_code == 413


async def test_rate_and_concurrency_limits(
    make_settings: Callable[..., Settings], sessions: Any, client: Callable[..., AsyncOpenAI]
) -> None:
    with serve(make_settings(api_keys=KEYS, rate_limit_per_minute=3)) as url:
        api = client(url)
        for _ in range(3):
            await api.models.list()
        with pytest.raises(openai.RateLimitError) as limited:
            await api.models.list()
        assert int(limited.value.response.headers["retry-after"]) > 0
        await client(url, "bob-secret-key").models.list()  # limits are per key
    with serve(make_settings(api_keys=KEYS, max_concurrent_tasks=1)) as url:
        headers = {"Authorization": "Bearer alice-secret-key"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            first = await http.post("/v1/tasks", files={"file": clip("jfk.wav").read_bytes()})
            second = await http.post("/v1/tasks", files={"file": clip("jfk.wav").read_bytes()})
    assert first.status_code == 201
    assert second.status_code == 429 and second.headers["retry-after"] == "5"


async def test_a_disconnected_client_cancels_its_task(base_url: str) -> None:
    headers = {"Authorization": "Bearer alice-secret-key"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:
        request = asyncio.create_task(
            http.post(
                "/v1/audio/transcriptions", files={"file": clip("jfk.wav").read_bytes()}, data={"model": "whisper-1"}
            )
        )

        async def queued() -> list[dict[str, Any]]:
            return list((await http.get("/v1/tasks", params={"status": "queued"})).json()["items"])

        [task] = await wait_for(queued, timeout=10)  # no worker runs: the request waits
        request.cancel()
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as http:

        async def cancelled() -> bool:
            return bool((await http.get(f"/v1/tasks/{task['id']}")).json()["status"] == "cancelled")

        await wait_for(cancelled, timeout=10)


async def test_keys_see_only_their_own_tasks(base_url: str) -> None:
    def as_(key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"})

    async with as_("alice-secret-key") as alice, as_("bob-secret-key") as bob, as_("admin-secret-key") as admin:
        created = (await alice.post("/v1/tasks", files={"file": clip("jfk.wav").read_bytes()})).json()
        task_id = created["id"]
        assert (await bob.get(f"/v1/tasks/{task_id}")).status_code == 404
        assert (await bob.get(f"/v1/tasks/{task_id}/result")).status_code == 404
        assert (await bob.get(f"/v1/tasks/{task_id}/subtitles")).status_code == 404
        assert (await bob.post(f"/v1/tasks/{task_id}/cancel")).status_code == 404
        assert (await bob.delete(f"/v1/tasks/{task_id}")).status_code == 404
        assert (await bob.get("/v1/tasks")).json() == {"items": [], "total": 0, "next_cursor": None}
        assert (await alice.get("/v1/tasks")).json()["total"] == 1
        assert (await admin.get(f"/v1/tasks/{task_id}")).status_code == 200
        assert (await admin.get("/v1/tasks")).json()["total"] == 1
        # the same Idempotency-Key is each key's own
        for who in (alice, bob):
            response = await who.post(
                "/v1/tasks", files={"file": clip("jfk.wav").read_bytes()}, headers={"Idempotency-Key": "k1"}
            )
            assert response.status_code == 201
        assert (await alice.delete(f"/v1/tasks/{task_id}")).status_code == 204


async def test_requests_without_a_valid_key_are_refused(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        for method, path in (
            ("GET", "/v1/tasks"),
            ("POST", "/v1/tasks"),
            ("GET", "/v1/workers"),
            ("GET", "/v1/models"),
        ):
            response = await http.request(method, path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
        wrong = await http.get("/v1/tasks", headers={"Authorization": "Bearer nope-nope-nope"})
        assert wrong.status_code == 401 and wrong.json()["detail"].startswith("Invalid API key (sent in Authorization)")
        assert "X-API-Key" in wrong.json()["detail"] and "X-Token" in wrong.json()["detail"]  # the accepted headers
        basic = await http.get("/v1/tasks", headers={"Authorization": "Basic YWxpY2U6c2VjcmV0"})
        assert basic.status_code == 401
        assert (await http.get("/health")).status_code == 200
        assert (await http.get("/docs")).status_code == 200
        assert (await http.get("/openapi.json")).status_code == 200

"""Deduplication: the same sound with the same options reuses a completed result instead of transcribing again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.api.test_task_lifecycle import upload, wait_status
from tests.audio import clip
from tests.fakes import FakeEngine
from tests.media_files import load_pcm, write_audio

StartWorker = Callable[..., Awaitable[Any]]
ALLOW_LOOPBACK = {"allowed_hosts": ["127.0.0.1"]}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(**ALLOW_LOOPBACK)


async def send(client: httpx.AsyncClient, path: Path, **data: str) -> dict[str, Any]:
    with path.open("rb") as f:
        response = await client.post("/v1/tasks", files={"file": (path.name, f)}, data=data)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_same_sound_in_another_container_reuses_the_result(
    client: httpx.AsyncClient, run_worker: StartWorker, tmp_path: Path
) -> None:
    engine = FakeEngine(segment_seconds=11.0)
    await run_worker(engine)
    first = await upload(client, "jfk.wav", language="en")
    done = await wait_status(client, first["id"], "completed")
    # The same samples as FLAC: another file, the same decoded sound.
    flac = write_audio(tmp_path / "jfk.flac", load_pcm(clip("jfk.wav")), container="flac", codec="flac")
    again = await send(client, flac, language="en")
    assert again["status"] == "completed" and again["reused_from"] == first["id"]
    assert again["result"] == done["result"] and len(engine.calls) == 1
    assert (await client.get(f"/v1/tasks/{again['id']}/subtitles")).text.startswith("1\n00:00:00,000")

    # Opting out, or any option that shapes the result, transcribes again.
    fresh = await send(client, flac, language="en", dedupe="false")
    other = await send(client, flac, language="en", word_timestamps="true")
    assert fresh["status"] == other["status"] == "queued" and fresh["reused_from"] is None
    await wait_status(client, fresh["id"], "completed")
    await wait_status(client, other["id"], "completed")
    assert len(engine.calls) == 3

    # Deleting the original leaves the copy whole.
    assert (await client.delete(f"/v1/tasks/{first['id']}")).status_code == 204
    assert (await client.get(f"/v1/tasks/{again['id']}/result")).json() == done["result"]


async def test_identical_tasks_queued_together_transcribe_once(
    client: httpx.AsyncClient, run_worker: StartWorker
) -> None:
    first = await upload(client, "jfk.wav")
    second = await upload(client, "jfk.wav")
    assert second["status"] == "queued"  # nothing to reuse yet
    engine = FakeEngine(segment_seconds=11.0)
    await run_worker(engine)
    done = await wait_status(client, second["id"], "completed")
    assert done["reused_from"] == first["id"] and len(engine.calls) == 1


async def test_a_url_task_reuses_a_result_once_its_media_is_known(
    client: httpx.AsyncClient,
    run_worker: StartWorker,
    media_server: str,
) -> None:
    engine = FakeEngine(segment_seconds=11.0)
    await run_worker(engine, **ALLOW_LOOPBACK)
    uploaded = await upload(client, "jfk.wav")
    await wait_status(client, uploaded["id"], "completed")
    created = await client.post("/v1/tasks", json={"file_url": f"{media_server}/jfk.wav"})
    assert created.status_code == 201, created.text
    done = await wait_status(client, created.json()["id"], "completed", "failed")
    assert done["reused_from"] == uploaded["id"] and len(engine.calls) == 1

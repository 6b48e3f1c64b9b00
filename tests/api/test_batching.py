"""Continuous batching through the API and a real worker: tasks sent together share forward passes and each gets its
own transcript; a short task sent during a long one is done first; high priority goes first."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.api.test_task_lifecycle import upload, wait_status
from tests.audio import clip, reference, wer
from tests.conftest import wait_for
from tests.media_files import load_pcm, write_audio
from workers import windows
from workers.engine import FasterWhisperEngine

pytestmark = [pytest.mark.model, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
SHORT = ["jfk.wav", "librivox_0870.wav", "fr_asterisk_invalid.wav", "es_asterisk_ss-noservice.wav"]


class Recorder:
    """Wraps the scheduler's decode: records each batch (window durations, which name the clips) and holds the first
    batch until released."""

    def __init__(self, inner: Callable[[Sequence[windows.Window]], list[windows.Decoded]]) -> None:
        self.inner = inner
        self.batches: list[list[float]] = []
        self.release = threading.Event()
        self.holding = threading.Event()

    def __call__(self, batch: Sequence[windows.Window]) -> list[windows.Decoded]:
        if not self.batches and not self.release.is_set():
            self.holding.set()
            assert self.release.wait(120)
        self.batches.append([round(window.duration, 1) for window in batch])
        return self.inner(batch)


@pytest.fixture
def engine(real_engine: FasterWhisperEngine) -> Iterator[tuple[FasterWhisperEngine, Recorder]]:
    made = FasterWhisperEngine(real_engine.pool, batch_size=8, batching=True)
    assert made.scheduler is not None
    recorder = Recorder(made.scheduler.decode)
    made.scheduler.decode = recorder
    yield made, recorder
    recorder.release.set()
    made.scheduler.close()


async def until(predicate: Callable[[], bool]) -> None:
    async def check() -> bool:
        return predicate()

    await wait_for(check, timeout=120, interval=0.05)


async def test_tasks_sent_together_share_batches_and_each_gets_its_own_transcript(
    client: httpx.AsyncClient,
    run_worker: Callable[..., Awaitable[Any]],
    engine: tuple[FasterWhisperEngine, Recorder],
) -> None:
    batching, recorder = engine
    assert batching.scheduler is not None
    first = await upload(client, "librivox_0880.wav", dedupe="false")
    worker = await run_worker(batching)
    assert worker.concurrency == 16  # twice a CPU batch: claimed at once, planned while a batch decodes
    await until(recorder.holding.is_set)
    created = await asyncio.gather(*(upload(client, name, dedupe="false") for name in SHORT))
    await until(lambda: batching.scheduler is not None and batching.scheduler.pending() == len(SHORT))
    recorder.release.set()
    done = [await wait_status(client, task["id"], "completed", "failed", timeout=120) for task in [first, *created]]
    assert [task["status"] for task in done] == ["completed"] * 5, [task["error"] for task in done]
    assert len(recorder.batches[1]) == len(SHORT), recorder.batches  # the four shared one forward pass
    for name, task in zip(SHORT, done[1:], strict=True):
        assert wer(reference(name), task["result"]["text"]) <= 0.25, (name, task["result"]["text"])
    assert [task["result"]["language"] for task in done[1:]] == ["en", "en", "fr", "es"]


async def test_a_short_task_sent_during_a_long_one_is_done_first(
    client: httpx.AsyncClient,
    run_worker: Callable[..., Awaitable[Any]],
    engine: tuple[FasterWhisperEngine, Recorder],
    tmp_path: Path,
) -> None:
    """Four minutes of speech (eight windows); the short task arrives while the first batch of the long one runs."""
    batching, recorder = engine
    speech = load_pcm(clip("long_en.flac"))
    long_file = write_audio(tmp_path / "long.flac", np.concatenate([speech, speech]), container="flac", codec="flac")
    with long_file.open("rb") as f:
        response = await client.post("/v1/tasks", files={"file": ("long.flac", f)}, data={"dedupe": "false"})
    long_task = response.json()
    await run_worker(batching)
    await until(recorder.holding.is_set)
    assert batching.scheduler is not None
    waiting = batching.scheduler.pending()  # the long task's windows past the first batch
    assert waiting >= 4, waiting
    short = await upload(client, "jfk.wav", dedupe="false")
    await until(lambda: batching.scheduler is not None and batching.scheduler.pending() == waiting + 1)
    recorder.release.set()
    short_done = await wait_status(client, short["id"], "completed", "failed", timeout=300)
    assert short_done["status"] == "completed"
    long_now = (await client.get(f"/v1/tasks/{long_task['id']}")).json()
    assert long_now["status"] == "running", long_now  # half of its windows are still to come
    long_done = await wait_status(client, long_task["id"], "completed", "failed", timeout=600)
    assert long_done["status"] == "completed"
    assert wer(reference("jfk.wav"), short_done["result"]["text"]) <= 0.25
    assert wer(reference("long_en.flac") + " " + reference("long_en.flac"), long_done["result"]["text"]) <= 0.10


async def test_high_priority_windows_are_decoded_first(
    client: httpx.AsyncClient,
    run_worker: Callable[..., Awaitable[Any]],
    engine: tuple[FasterWhisperEngine, Recorder],
) -> None:
    batching, recorder = engine
    await upload(client, "cards_003.wav", dedupe="false")
    await run_worker(batching, worker_concurrency=3)
    await until(recorder.holding.is_set)
    low = await upload(client, "librivox_0870.wav", dedupe="false", priority="low")
    high = await upload(client, "librivox_0880.wav", dedupe="false", priority="high")
    await until(lambda: batching.scheduler is not None and batching.scheduler.pending() == 2)
    recorder.release.set()
    for task in (low, high):
        assert (await wait_status(client, task["id"], "completed", timeout=120))["status"] == "completed"
    assert recorder.batches[1] == [3.0, 7.1]  # librivox_0880 (high) before librivox_0870 (low)

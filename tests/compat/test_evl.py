"""The evl API ("Whisper Service", Evil0ctal/Fast-Powerful-Whisper-AI-Services-API): its clients' documented calls,
unchanged, against the real app with a real worker on real audio; shapes checked field by field against
../shared/compat/evl.md."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import wave
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import av
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Base
from app.services.webhooks import verify_webhook
from app.settings import Settings
from tests.audio import clip, reference, wer
from tests.conftest import WEBHOOK_SECRET, app_client, wait_for
from tests.fake_llm import FakeLLM
from workers.engine import FasterWhisperEngine

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

StartWorker = Callable[..., Awaitable[Any]]
Sessions = async_sessionmaker[AsyncSession]
SERVER_LLM_KEY = "sk-server-0123456789abcdefSECRET"
CLIENT_LLM_KEY = "sk-client-ZYXWVUTSRQ9876543210mine"
TASK_KEYS = [
    "id",
    "status",
    "callback_url",
    "callback_status_code",
    "callback_message",
    "callback_time",
    "priority",
    "engine_name",
    "task_type",
    "created_at",
    "updated_at",
    "task_processing_time",
    "file_path",
    "file_url",
    "file_name",
    "file_size_bytes",
    "file_duration",
    "language",
    "platform",
    "decode_options",
    "error_message",
    "output_url",
    "result",
]
DECODE_KEYS = [
    "language",
    "temperature",
    "compression_ratio_threshold",
    "no_speech_threshold",
    "condition_on_previous_text",
    "initial_prompt",
    "word_timestamps",
    "prepend_punctuations",
    "append_punctuations",
    "clip_timestamps",
    "hallucination_silence_threshold",
]
SEGMENT_KEYS = [
    "id",
    "seek",
    "start",
    "end",
    "text",
    "tokens",
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
    "words",
]
INFO_KEYS = [
    "language",
    "language_probability",
    "duration",
    "duration_after_vad",
    "all_language_probs",
    "transcription_options",
    "vad_options",
]
OPTION_KEYS = {
    "beam_size",
    "best_of",
    "patience",
    "length_penalty",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "log_prob_threshold",
    "no_speech_threshold",
    "compression_ratio_threshold",
    "condition_on_previous_text",
    "prompt_reset_on_temperature",
    "temperatures",
    "initial_prompt",
    "prefix",
    "suppress_blank",
    "suppress_tokens",
    "without_timestamps",
    "max_initial_timestamp",
    "word_timestamps",
    "prepend_punctuations",
    "append_punctuations",
    "max_new_tokens",
    "clip_timestamps",
    "hallucination_silence_threshold",
    "hotwords",
}
LOCAL_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$")
ERROR_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
QUEUED = "Task is queued and not started yet"
FAILED = "Task failed during processing"
NOT_FOUND = "Task not found or has been deleted or invalid task ID"
EVERYTHING = {"status": None, "priority": None, "engine_name": None, "has_result": None, "has_error": None}


class Hooks(BaseHTTPRequestHandler):
    """A callback receiver on loopback: records each POST and answers 200 with a small body."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok":true}')

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def hooks() -> Iterator[str]:
    Hooks.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], llm: str) -> Settings:
    return make_settings(
        allowed_hosts=["127.0.0.1"],
        llm_base_url=llm,
        llm_api_key=SERVER_LLM_KEY,
        llm_model="house-model",
        lease_seconds=600.0,
    )


def check_envelope(response: httpx.Response, path: str) -> dict[str, Any]:
    """A 200 `{code, router, params, data}` whose router is this request's URL; returns the body."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert list(body) == ["code", "router", "params", "data"]
    assert body["code"] == 200 and body["router"] == str(response.request.url)
    assert str(response.request.url).startswith(f"http://test{path}")
    return body


def check_error(response: httpx.Response, status: int, message: str, params: Any = None) -> dict[str, Any]:
    """`{"detail": {code, message, time, router, params}}` with this status and message."""
    assert response.status_code == status, response.text
    detail: dict[str, Any] = response.json()["detail"]
    assert list(detail) == ["code", "message", "time", "router", "params"]
    assert detail["code"] == status and message in detail["message"], detail
    assert ERROR_TIME.match(detail["time"]) and detail["router"] == str(response.request.url)
    assert detail["params"] == (dict(response.request.url.params) if params is None else params)
    return detail


def check_invalid(response: httpx.Response, where: str, field: str) -> str:
    """FastAPI's 422 list naming `field` in `where` (query or body); returns its message."""
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert isinstance(errors, list) and errors, errors
    [error] = [e for e in errors if e["loc"][0] == where and (not field or e["loc"][1:2] == [field])][:1]
    assert {"type", "loc", "msg"} <= set(error) and error["msg"]
    return str(error["msg"])


def check_task(task: dict[str, Any], *, status: str) -> None:
    """The task object's fields, in the spec's order and types."""
    assert list(task) == TASK_KEYS
    assert isinstance(task["id"], int) and task["status"] == status
    assert task["engine_name"] == "faster_whisper" and task["task_type"] in ("transcribe", "translate")
    assert task["priority"] in ("high", "normal", "low") and task["file_path"] is None
    assert LOCAL_ISO.match(task["created_at"]) and LOCAL_ISO.match(task["updated_at"])
    assert task["updated_at"] >= task["created_at"]
    assert list(task["decode_options"]) == DECODE_KEYS
    assert task["output_url"] == f"http://test/api/whisper/tasks/result?task_id={task['id']}"
    if status == "completed":
        result = task["result"]
        assert list(result) == ["text", "segments", "info"] and list(result["info"]) == INFO_KEYS
        assert set(result["info"]["transcription_options"]) == OPTION_KEYS
        assert result["text"] == " ".join(s["text"] for s in result["segments"]).strip()
        assert [s["id"] for s in result["segments"]] == list(range(1, len(result["segments"]) + 1))
        for segment in result["segments"]:
            assert list(segment) == SEGMENT_KEYS and segment["start"] <= segment["end"]
            assert all(list(w) == ["start", "end", "word", "probability"] for w in segment["words"] or [])
        assert isinstance(task["task_processing_time"], float) and task["language"]
    else:
        assert task["result"] is None and task["language"] is None


async def create_upload(client: httpx.AsyncClient, name: str, **query: str) -> dict[str, Any]:
    with clip(name).open("rb") as f:
        response = await client.post(
            "/api/whisper/tasks/create", params=query, files={"file_upload": (name, f, "audio/wav")}
        )
    return check_envelope(response, "/api/whisper/tasks/create")


async def create_url(client: httpx.AsyncClient, url: str, **query: str) -> dict[str, Any]:
    response = await client.post("/api/whisper/tasks/create", params={"file_url": url, **query})
    return check_envelope(response, "/api/whisper/tasks/create")


async def finished(client: httpx.AsyncClient, task_id: int) -> httpx.Response:
    """The result route's answer once the task is no longer queued or processing."""

    async def check() -> httpx.Response | None:
        response = await client.get("/api/whisper/tasks/result", params={"task_id": task_id})
        return None if response.status_code == 202 else response

    response: httpx.Response = await wait_for(check, timeout=240, interval=0.2)
    return response


async def query(client: httpx.AsyncClient, everything: bool = False, **filters: Any) -> dict[str, Any]:
    body = {**EVERYTHING, **filters} if everything else filters
    response = await client.post("/api/whisper/tasks/query", json=body)
    data: dict[str, Any] = check_envelope(response, "/api/whisper/tasks/query")["data"]
    assert list(data) == ["tasks", "total_count", "has_more", "next_offset"]
    return data


async def stored_text(sessions: Sessions) -> str:
    """Every row of every table, as text."""
    async with sessions() as session:
        rows = [repr((await session.execute(select(table))).all()) for table in Base.metadata.sorted_tables]
    return "\n".join(rows)


@pytest.mark.model
async def test_evl_clients_work_unchanged_with_a_real_worker(
    client: httpx.AsyncClient,
    sessions: Sessions,
    settings: Settings,
    run_worker: StartWorker,
    real_engine: FasterWhisperEngine,
    media_server: str,
    hooks: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Create: an upload (options in the query string), a URL, a URL that fails, the TikTok and Douyin routes (a
    # loopback page stands for the platform's), and a task of our own API asking for the full callback body.
    upload = await create_upload(
        client, "jfk.wav", language="en", priority="high", word_timestamps="true", callback_url=f"{hooks}/evl"
    )
    params, task = upload["params"], upload["data"]
    assert list(params) == [*DECODE_KEYS, "task_type", "priority", "callback_url"]
    assert params["language"] == "en" and params["word_timestamps"] is True and params["priority"] == "high"
    assert params["callback_url"] == f"{hooks}/evl" and params["task_type"] == "transcribe"
    assert params["clip_timestamps"] == "0" and params["initial_prompt"] == ""
    check_task(task, status="queued")
    assert (task["file_name"], task["file_url"], task["platform"]) == ("jfk.wav", None, "")
    assert task["file_size_bytes"] == clip("jfk.wav").stat().st_size and task["file_duration"] == pytest.approx(11.0)
    assert task["callback_url"] == f"{hooks}/evl" and task["decode_options"] == {
        k: v for k, v in params.items() if k in DECODE_KEYS
    }
    check_error(await client.get("/api/whisper/tasks/result", params={"task_id": task["id"]}), 202, QUEUED)

    # The same sound with the same options: decoded once, the others reuse its result (dedupe) once fetched.
    same = {"language": "en", "word_timestamps": "true"}
    by_url = (await create_url(client, f"{media_server}/jfk.wav", platform="podcast", **same))["data"]
    check_task(by_url, status="queued")
    assert (by_url["file_url"], by_url["file_name"], by_url["platform"]) == (f"{media_server}/jfk.wav", None, "podcast")
    assert by_url["callback_url"] == "" and by_url["priority"] == "normal"
    broken = (await create_url(client, f"{media_server}/garbage.mp3"))["data"]

    tiktok = await client.post(
        "/api/tiktok/video_task", data={"url": f"{media_server}/video-page.html", "priority": "low", **same}
    )
    tiktok_body = check_envelope(tiktok, "/api/tiktok/video_task")
    check_task(tiktok_body["data"], status="queued")
    assert tiktok_body["data"]["platform"] == "tiktok" and tiktok_body["params"]["priority"] == "low"
    assert tiktok_body["data"]["file_url"] == f"{media_server}/video-page.html"
    douyin = await client.post(
        "/api/douyin/video_task",
        files={"url": (None, f"{media_server}/video-page.html"), **{k: (None, v) for k, v in same.items()}},
    )
    douyin_task = check_envelope(douyin, "/api/douyin/video_task")["data"]
    assert douyin_task["platform"] == "douyin" and douyin_task["decode_options"]["language"] == "en"

    with clip("cards_003.wav").open("rb") as f:
        own = await client.post(
            "/v1/tasks",
            files={"file": ("cards.wav", f)},
            data={"callback_url": f"{hooks}/full", "callback_payload": "full", "language": "en"},
        )
    assert own.status_code == 201 and own.json()["callback_payload"] == "full", own.text
    numbers = [task["id"], by_url["id"], broken["id"], tiktok_body["data"]["id"], douyin_task["id"]]
    assert numbers == sorted(numbers) and len(set(numbers)) == 5 and own.json()["number"] == numbers[-1] + 1

    await run_worker(real_engine, allowed_hosts=["127.0.0.1"])
    done = check_envelope(await finished(client, task["id"]), "/api/whisper/tasks/result")
    assert done["params"] == {"task_id": str(task["id"])}
    completed = done["data"]
    check_task(completed, status="completed")
    assert completed["language"] == "en" and completed["result"]["info"]["language"] == "en"
    assert wer(reference("jfk.wav"), completed["result"]["text"]) < 0.2, completed["result"]["text"]
    assert all(s["words"] for s in completed["result"]["segments"])
    assert (await client.get(f"/v1/tasks/{own.json()['id']}")).json()["number"] == own.json()["number"]

    # The evl callback: that API's task object as the body, signed as ours are.
    async def delivered(path: str) -> dict[str, Any] | None:
        return next((r for r in Hooks.received if r["path"] == path), None)

    hook = await wait_for(lambda: delivered("/evl"), timeout=30)
    evl_body = verify_webhook(hook["body"], hook["headers"], WEBHOOK_SECRET)
    assert evl_body == json.loads(hook["body"])
    check_task(evl_body, status="completed")
    assert evl_body["id"] == task["id"] and evl_body["result"] == completed["result"]
    assert [evl_body[k] for k in ("callback_status_code", "callback_message", "callback_time")] == [None] * 3

    async def answered() -> dict[str, Any] | None:
        data: dict[str, Any] = (await client.get("/api/whisper/tasks/result", params={"task_id": task["id"]})).json()
        return data["data"] if data["data"]["callback_status_code"] else None

    recorded = await wait_for(answered, timeout=10)
    assert recorded["callback_status_code"] == 200 and recorded["callback_message"] == '{"ok":true}'
    assert LOCAL_ISO.match(recorded["callback_time"])

    # callback_payload=full on our own API: the whole task with its transcript.
    full_hook = await wait_for(lambda: delivered("/full"), timeout=120)
    full = verify_webhook(full_hook["body"], full_hook["headers"], WEBHOOK_SECRET)
    assert full["type"] == "task.completed" and full["data"]["id"] == own.json()["id"]
    assert full["data"]["status"] == "completed" and full["data"]["number"] == own.json()["number"]
    assert wer(reference("cards_003.wav"), full["data"]["result"]["text"]) < 0.5, full["data"]["result"]
    assert full["data"]["result"]["segments"] and full["data"]["callback_payload"] == "full"

    for number in numbers[1:]:
        await finished(client, number)
    check_error(await client.get("/api/whisper/tasks/result", params={"task_id": broken["id"]}), 500, FAILED)
    failed = await query(client, status="failed", priority=None, has_result=None, has_error=True)
    assert [t["id"] for t in failed["tasks"]] == [broken["id"]] and failed["total_count"] == 1
    check_task(failed["tasks"][0], status="failed")
    assert failed["tasks"][0]["error_message"].startswith("UnsupportedMedia: ")
    page_task = check_envelope(await finished(client, tiktok_body["data"]["id"]), "/api/whisper/tasks/result")
    assert wer(reference("jfk.wav"), page_task["data"]["result"]["text"]) < 0.2

    # Query: the defaults filter (completed, normal, with a result, no error); limit/offset paging over everything.
    default = await query(client)
    assert [t["id"] for t in default["tasks"]] == [by_url["id"], douyin_task["id"], own.json()["number"]]
    everything = await query(client, True, limit=2, offset=0)
    assert [t["id"] for t in everything["tasks"]] == numbers[:2]
    assert (everything["total_count"], everything["has_more"], everything["next_offset"]) == (6, True, 2)
    last = await query(client, True, limit=4, offset=4)
    assert [t["id"] for t in last["tasks"]] == [douyin_task["id"], own.json()["number"]]
    assert (last["has_more"], last["next_offset"]) == (False, None)
    assert (await query(client, True, priority="high"))["total_count"] == 1
    assert (await query(client, True, language="fr"))["total_count"] == 0
    assert (await query(client, True, created_after="2999-01-01T00:00:00"))["total_count"] == 0
    assert (await query(client, True, created_before="2999-01-01T00:00:00"))["total_count"] == 6
    assert (await query(client, True, engine_name="openai_whisper"))["total_count"] == 0
    echoed = check_envelope(await client.post("/api/whisper/tasks/query", json={}), "/api/whisper/tasks/query")
    assert echoed["params"] == {
        "status": "completed",
        "priority": "normal",
        "created_after": "",
        "created_before": "",
        "language": "",  # as omitted; an explicit "" echoes as null
        "engine_name": "faster_whisper",
        "has_result": True,
        "has_error": False,
        "limit": 20,
        "offset": 0,
    }

    explicit = await client.post("/api/whisper/tasks/query", json={"language": "", "engine_name": ""})
    assert check_envelope(explicit, "/api/whisper/tasks/query")["params"]["language"] is None
    assert explicit.json()["params"]["engine_name"] is None and explicit.json()["data"]["total_count"] == 3

    # Subtitles.
    srt = await client.get("/api/whisper/generate_subtitles", params={"task_id": task["id"]})
    assert srt.status_code == 200 and srt.headers["content-type"] == "text/srt; charset=utf-8"
    assert srt.headers["content-disposition"] == f'attachment; filename="Task_{task["id"]}_Subtitle.srt"'
    assert srt.text.startswith("1\n00:00:00,000 --> ") and "country" in srt.text
    # evl.md 5.8: one cue per segment however long, not the 2-line, 7 s cues of the other routes.
    segment_texts = [" ".join(s["text"].split()) for s in completed["result"]["segments"]]
    assert re.findall(r"\d+\n\S+ --> \S+\n(.+)\n", srt.text) == segment_texts and max(map(len, segment_texts)) > 42
    vtt = await client.get("/api/whisper/generate_subtitles", params={"task_id": task["id"], "output_format": "vtt"})
    assert vtt.headers["content-type"] == "text/vtt; charset=utf-8" and vtt.text.startswith("WEBVTT\n\n")
    assert re.search(r"\n00:00:\d\d\.\d\d\d --> 00:00:\d\d\.\d\d\d\n.*country", vtt.text)
    not_done = await client.get("/api/whisper/generate_subtitles", params={"task_id": broken["id"]})
    check_error(not_done, 400, "This task is not available for generating subtitles.")

    # ChatGPT summary: the server's LLM, then the caller's own key for one call (used, never stored or logged).
    summary = await client.post("/api/chatgpt/summary", json={"task_id": task["id"], "output_language": "zh"})
    body = check_envelope(summary, "/api/chatgpt/summary")
    assert body["data"]["task_text"] == completed["result"]["text"]
    completion = body["data"]["chat_completion"]
    assert completion["object"] == "chat.completion" and completion["model"] == "house-model"
    assert completion["choices"][0]["message"] == {
        "role": "assistant",
        "content": "summary#1",
        "refusal": None,
        "audio": None,
        "function_call": None,
        "tool_calls": None,
    }
    assert completion["usage"]["total_tokens"] == 110 and completion["choices"][0]["finish_reason"] == "stop"
    assert body["params"]["chatgpt_api_key"] == "" and body["params"]["output_language"] == "zh"
    assert body["params"]["chatgpt_prompt"].startswith("Summarize and analyze the following content")
    assert FakeLLM.requests[-1]["auth"] == f"Bearer {SERVER_LLM_KEY}"
    assert completed["result"]["text"].split()[3] in FakeLLM.requests[-1]["body"]["messages"][-1]["content"]

    # A key of one's own replaces the server's for the call, at the operator's endpoint: it opens no other model.
    sent = len(FakeLLM.requests)
    other_model = {"task_id": task["id"], "chatgpt_api_key": CLIENT_LLM_KEY, "chatgpt_model": "gpt-4o"}
    refused_model = await client.post("/api/chatgpt/summary", json=other_model)
    assert refused_model.status_code == 422 and "gpt-4o" in refused_model.text, refused_model.text
    assert CLIENT_LLM_KEY not in refused_model.text and len(FakeLLM.requests) == sent
    own_key = {
        "task_id": task["id"],
        "chatgpt_api_key": CLIENT_LLM_KEY,
        "chatgpt_model": "house-model",
        "chatgpt_prompt": "Short.",
    }
    mine = check_envelope(await client.post("/api/chatgpt/summary", json=own_key), "/api/chatgpt/summary")
    assert (
        FakeLLM.requests[-1]["auth"] == f"Bearer {CLIENT_LLM_KEY}"
        and FakeLLM.requests[-1]["body"]["model"] == "house-model"
    )
    assert mine["params"]["chatgpt_api_key"] == "***" and mine["params"]["chatgpt_prompt"] == "Short."
    assert mine["data"]["chat_completion"]["model"] == "house-model"
    FakeLLM.mode = "bad-key"  # the provider refuses the key and echoes it
    refused = await client.post("/api/chatgpt/summary", json=own_key)
    detail = check_error(
        refused,
        502,
        "401",
        params={**own_key, "chatgpt_api_key": "***", "output_language": "en", "save_to_database": True},
    )
    assert CLIENT_LLM_KEY not in refused.text and CLIENT_LLM_KEY[5:17] not in refused.text, detail
    stored = await stored_text(sessions)
    assert "summary#2" in stored and CLIENT_LLM_KEY not in stored and CLIENT_LLM_KEY[5:17] not in stored
    assert CLIENT_LLM_KEY not in caplog.text and CLIENT_LLM_KEY[5:17] not in caplog.text
    for path in Path(settings.data_dir).glob("queue.db*"):
        assert CLIENT_LLM_KEY.encode() not in path.read_bytes()

    # Delete: gone for every route afterwards.
    deleted = check_envelope(
        await client.delete("/api/whisper/tasks/delete", params={"task_id": by_url["id"]}), "/api/whisper/tasks/delete"
    )
    assert deleted["data"] == {"task_id": by_url["id"], "message": "Task deleted successfully"}
    assert deleted["params"] == {"task_id": str(by_url["id"])}
    check_error(await client.get("/api/whisper/tasks/result", params={"task_id": by_url["id"]}), 404, NOT_FOUND)
    check_error(await client.delete("/api/whisper/tasks/delete", params={"task_id": by_url["id"]}), 404, NOT_FOUND)


async def test_extract_audio_returns_the_soundtrack(client: httpx.AsyncClient) -> None:
    with clip("jfk_video.mp4").open("rb") as f:
        response = await client.post(
            "/api/whisper/extract_audio", files={"file": ("talk.mp4", f, "video/mp4")}, data={"sample_rate": "22050"}
        )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["content-disposition"] == 'attachment; filename="extracted_audio.wav"'
    with wave.open(io.BytesIO(response.content)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (22050, 2, 1)
        assert wav.getnframes() / 22050 == pytest.approx(11.0, abs=0.1)
    with clip("jfk_video.mp4").open("rb") as f:
        mp3 = await client.post(
            "/api/whisper/extract_audio",
            files={"file": ("talk.mp4", f, "video/mp4")},
            data={"output_format": "mp3", "sample_rate": "16000", "bit_depth": "2"},
        )
    assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mp3"
    with av.open(io.BytesIO(mp3.content)) as container:
        stream = container.streams.audio[0]
        assert container.format.name == "mp3" and stream.sample_rate == 16000


async def test_health_callback_test_and_workflow(client: httpx.AsyncClient) -> None:
    health = await client.get("/api/health/check")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    sample = {"id": 3, "status": "completed", "result": {"text": "hi"}}
    echoed = check_envelope(await client.post("/api/whisper/callback/test", json=sample), "/api/whisper/callback/test")
    assert echoed["params"] == sample
    assert echoed["data"] == {"message": "Callback interface test successful.", "callback_data": sample}
    demo = check_envelope(await client.post("/api/whisper/callback/test", json={}), "/api/whisper/callback/test")
    assert demo["data"]["callback_data"]["result"]["text"] and demo["params"] == demo["data"]["callback_data"]
    check_invalid(await client.post("/api/whisper/callback/test", json=[1, 2]), "body", "")
    flow = {"WORKFLOW_NAME": "nightly", "TRIGGER_TYPE": "MANUAL", "tasks": [{"TASK_ID": "a", "COMPONENT": "whisper"}]}
    stub = check_envelope(await client.post("/api/workflow/create_work_flow", json=flow), "/api/workflow/")
    assert stub["data"] == {"message": "This API is not implemented yet."}
    bad_flow = await client.post("/api/workflow/create_work_flow", json={**flow, "TRIGGER_TYPE": "HOURLY"})
    check_invalid(bad_flow, "body", "TRIGGER_TYPE")


async def test_bad_input_answers_in_the_evl_shapes(client: httpx.AsyncClient, media_server: str) -> None:
    create = "/api/whisper/tasks/create"
    check_error(await client.post(create), 400, "The file or file_url parameter cannot be empty")
    with clip("cards_003.wav").open("rb") as f:
        both = await client.post(create, params={"file_url": f"{media_server}/jfk.wav"}, files={"file_upload": f})
    check_error(both, 400, "cannot be both provided")
    check_error(
        await client.post(create, params={"file_url": "not a url"}), 400, "The format of the file URL is incorrect"
    )
    assert "should be 'transcribe' or 'translate'" in check_invalid(
        await client.post(create, params={"file_url": f"{media_server}/jfk.wav", "task_type": "summarise"}),
        "query",
        "task_type",
    )
    check_invalid(
        await client.post(create, params={"file_url": "https://x.example/a", "priority": "urgent"}), "query", "priority"
    )
    # Numbers JSON cannot carry: refused naming the field (they used to turn the echoed input into a 500).
    for value in ("nan", "inf", "1e309"):
        check_invalid(
            await client.post(create, params={"file_url": "https://x.example/a", "no_speech_threshold": value}),
            "query",
            "no_speech_threshold",
        )
    not_finite = b'{"task_id": NaN}'
    headers = {"content-type": "application/json"}
    check_invalid(await client.post("/api/chatgpt/summary", content=not_finite, headers=headers), "body", "task_id")
    check_invalid(
        await client.post("/api/whisper/tasks/query", content=b'{"limit": Infinity}', headers=headers), "body", "limit"
    )
    echoed = await client.post("/api/whisper/callback/test", content=b'{"a": NaN}', headers=headers)
    assert echoed.status_code == 200 and echoed.json()["data"]["callback_data"] == {"a": "nan"}, echoed.text
    check_invalid(
        await client.post(create, params={"file_url": "https://x.example/a", "temperature": "abc"}),
        "query",
        "temperature",
    )
    check_invalid(
        await client.post(create, params={"file_url": "https://x.example/a", "colour": "red"}), "query", "colour"
    )
    with clip("cards_003.wav").open("rb") as f:
        form_option = await client.post(create, files={"file_upload": f}, data={"language": "en"})
    assert "send it in the query string" in check_invalid(form_option, "body", "language")
    with clip("cards_003.wav").open("rb") as f:
        wrong_field = await client.post(create, files={"file": f})
    assert "file_upload" in check_invalid(wrong_field, "body", "file")
    not_media = await client.post(create, files={"file_upload": ("a.txt", b"just some text, not audio" * 50)})
    assert not_media.status_code == 415 and not_media.json()["detail"]["code"] == 415

    check_invalid(await client.post("/api/whisper/tasks/query"), "body", "")
    check_invalid(await client.post("/api/whisper/tasks/query", json={"limit": 0}), "body", "limit")
    check_invalid(await client.post("/api/whisper/tasks/query", json={"status": "running"}), "body", "status")
    assert "Invalid datetime format: yesterday" in check_invalid(
        await client.post("/api/whisper/tasks/query", json={"created_after": "yesterday"}), "body", "created_after"
    )
    check_invalid(await client.get("/api/whisper/tasks/result", params={"task_id": "abc"}), "query", "task_id")
    check_invalid(await client.get("/api/whisper/tasks/result"), "query", "task_id")
    check_error(await client.get("/api/whisper/tasks/result", params={"task_id": 99}), 404, NOT_FOUND)
    check_invalid(
        await client.get("/api/whisper/generate_subtitles", params={"task_id": 1, "output_format": "doc"}),
        "query",
        "output_format",
    )
    check_invalid(
        await client.delete("/api/whisper/tasks/delete", params={"task_id": 1, "force": "yes"}), "query", "force"
    )

    other_platform = await client.post("/api/tiktok/video_task", data={"url": "https://v.douyin.com/iRNBho5m/"})
    assert other_platform.status_code == 400 and other_platform.json() == {"detail": "Invalid TikTok video URL"}
    assert other_platform.headers["x-error"] == "Invalid TikTok video URL"
    check_invalid(
        await client.post("/api/douyin/video_task", json={"url": "https://v.douyin.com/iRNBho5m/"}), "body", "url"
    )
    check_invalid(await client.post("/api/douyin/video_task", data={"url": "ftp://v.douyin.com/x"}), "body", "url")

    check_invalid(await client.post("/api/chatgpt/summary", data={"task_id": "1"}), "body", "")
    check_error(await client.post("/api/chatgpt/summary", json={"task_id": 99}), 404, NOT_FOUND, params={})
    with clip("jfk_video.mp4").open("rb") as f:
        depth = await client.post(
            "/api/whisper/extract_audio", files={"file": ("v.mp4", f, "video/mp4")}, data={"bit_depth": "1"}
        )
    assert "bytes per sample" in check_invalid(depth, "body", "bit_depth")
    with clip("jfk_video.mp4").open("rb") as f:
        fmt = await client.post(
            "/api/whisper/extract_audio", files={"file": ("v.mp4", f, "video/mp4")}, data={"output_format": "ogg"}
        )
    check_invalid(fmt, "body", "output_format")
    own = await client.post("/v1/tasks", json={"file_url": "https://x.example/a.wav", "callback_payload": "evl"})
    assert own.status_code == 422 and own.json()["errors"][0]["field"] == "callback_payload", own.text
    assert (await client.get("/v1/tasks")).json()["total"] == 0  # nothing bad was created


async def test_keys_are_asked_for_and_tasks_stay_with_their_key(make_settings: Callable[..., Settings]) -> None:
    keys = make_settings(api_keys=["alice:alice-secret-key", "bob:bob-secret-key"])
    async with app_client(keys) as http:
        refused = await http.post("/api/whisper/tasks/create", params={"file_url": "https://x.example/a.wav"})
        assert refused.status_code == 401 and refused.json()["detail"]["code"] == 401
        assert (await http.get("/api/health/check")).status_code == 200
        alice = {"Authorization": "Bearer alice-secret-key"}
        # Empty values mean the default; booleans in any of pydantic's spellings.
        query = {"file_url": "https://x.example/a.wav", "temperature": "", "hallucination_silence_threshold": ""}
        query |= {"condition_on_previous_text": "off", "word_timestamps": "yes", "clip_timestamps": "0,5.5"}
        created = await http.post("/api/whisper/tasks/create", params=query, headers=alice)
        body = check_envelope(created, "/api/whisper/tasks/create")
        number = body["data"]["id"]
        assert body["params"]["temperature"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        assert body["params"]["hallucination_silence_threshold"] is None
        assert body["params"]["condition_on_previous_text"] is False and body["params"]["word_timestamps"] is True
        assert body["params"]["clip_timestamps"] == [0.0, 5.5] and body["data"]["decode_options"] == {
            k: v for k, v in body["params"].items() if k in DECODE_KEYS
        }
        bob = {"Authorization": "Bearer bob-secret-key"}
        check_error(
            await http.get("/api/whisper/tasks/result", params={"task_id": number}, headers=bob), 404, NOT_FOUND
        )
        mine = await http.get("/api/whisper/tasks/result", params={"task_id": number}, headers=alice)
        check_error(mine, 202, QUEUED)


async def test_the_routes_are_documented_under_their_tag(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = {path for path in spec["paths"] if path.startswith("/api/")}
    assert paths == {
        "/api/health/check",
        "/api/whisper/tasks/create",
        "/api/whisper/tasks/query",
        "/api/whisper/tasks/delete",
        "/api/whisper/tasks/result",
        "/api/whisper/callback/test",
        "/api/whisper/extract_audio",
        "/api/whisper/generate_subtitles",
        "/api/workflow/create_work_flow",
        "/api/tiktok/video_task",
        "/api/douyin/video_task",
        "/api/chatgpt/summary",
    }
    for path in paths:
        for operation in spec["paths"][path].values():
            assert operation["tags"] == ["Fast-Powerful-Whisper-AI-Services-API"] and operation["description"]
    create = spec["paths"]["/api/whisper/tasks/create"]["post"]
    assert {p["name"] for p in create["parameters"]} >= {"file_url", "task_type", "priority", "temperature"}
    assert "file_upload" in create["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert create["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/EvlError")

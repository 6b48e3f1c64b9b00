"""Clients of the two OpenAI-style Whisper servers (../shared/compat/openai_servers.md), sent unchanged to the real app.

whisper-api (taishan666/whisper-api): `file` only, `Authorization: Bearer <ACCESS_TOKEN>`, `{"text"}` back; settings
ACCESS_TOKEN, MODEL_SIZE, LANGUAGE. Whisper Local Server (chainlesschain): no key, `model` a size name, its extra
`task` field and its desktop client's `initial_prompt`, `json` answers with language/duration/segments/model/task,
`GET /health` and `GET /v1/models` with `models`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jiwer
import pytest

from app.services.chinese import ChineseScript, convert_text
from app.settings import Settings
from tests.audio import clip, reference, wer
from tests.conftest import app_client
from workers.engine import FasterWhisperEngine

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

ZH = "zh_aishell_W0121.wav"
EN = "librivox_0880.wav"  # 3 s of English
SEGMENT_KEYS = {
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
}
CJK = re.compile(r"[\u4e00-\u9fff]")
SRT_CUE = re.compile(r"(\d+)\n(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)\n(.+?)\n(?:\n|$)", re.S)


def cer(text: str) -> float:
    """Character error rate against the (Simplified) AISHELL reference, punctuation and spaces left out."""

    def chars(s: str) -> str:
        return "".join(c for c in convert_text(s, ChineseScript.simplified) if CJK.match(c))

    return float(jiwer.cer(chars(reference(ZH)), chars(text)))


def upload(name: str) -> dict[str, tuple[str, bytes]]:
    """`-F file=@<name>`."""
    return {"file": (name, clip(name).read_bytes())}


def assert_error(response: httpx.Response, status: int, needle: str) -> None:
    """Their FastAPI servers answer `{"detail": "..."}`; ours carries it beside OpenAI's `error`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str) and needle in body["detail"], body
    assert body["error"]["message"] == body["detail"]


@pytest.fixture
async def with_worker(run_worker: Callable[..., Awaitable[Any]], real_engine: FasterWhisperEngine) -> None:
    await run_worker(real_engine)


@pytest.fixture
def whisper_api_settings(monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]) -> Settings:
    """`docker run -e ACCESS_TOKEN=sk-tarzan -e MODEL_SIZE=base -e LANGUAGE=zh`: their variables, unprefixed."""
    monkeypatch.setenv("ACCESS_TOKEN", "sk-tarzan")
    monkeypatch.setenv("MODEL_SIZE", "base")
    monkeypatch.setenv("LANGUAGE", "zh")
    settings = make_settings()
    assert settings.access_token is not None and settings.default_model == "base"
    assert settings.default_language == "zh"
    return settings


# --- whisper-api ---------------------------------------------------------------------------------------------------


@pytest.mark.model
async def test_whisper_api_clients_work_unchanged(
    whisper_api_settings: Settings, sessions: Any, with_worker: None
) -> None:
    async with app_client(whisper_api_settings) as http:
        bearer = {"Authorization": "Bearer sk-tarzan"}
        # Its client sends only the file: the model and language are the server's (MODEL_SIZE, LANGUAGE).
        bare = await http.post("/v1/audio/transcriptions", headers=bearer, files=upload(ZH))
        assert bare.status_code == 200, bare.text
        assert bare.headers["content-type"] == "application/json"
        assert cer(bare.json()["text"]) <= 0.25
        # The doc's curl: `-H 'Authorization: Bearer sk-tarzan' -F file=@a.mp3 -F model=whisper-1`; any case of
        # "bearer" works, as with FastAPI's HTTPBearer.
        documented = await http.post(
            "/v1/audio/transcriptions",
            headers={"Authorization": "bearer sk-tarzan"},
            files=upload(ZH),
            data={"model": "whisper-1"},
        )
        assert documented.status_code == 200, documented.text
        assert documented.json()["text"] == bare.json()["text"]
        # OpenAI's other fields, which whisper-api accepts (and ignores), are accepted too.
        full = await http.post(
            "/v1/audio/transcriptions",
            headers=bearer,
            files=upload(ZH),
            data={
                "model": "whisper-1",
                "language": "zh",
                "response_format": "json",
                "temperature": "0",
                "timestamp_granularities[]": "segment",
            },
        )
        assert full.status_code == 200, full.text
        assert full.json()["text"] == bare.json()["text"]
        # Translations, `file` only: English text.
        translated = await http.post("/v1/audio/translations", headers=bearer, files=upload(ZH))
        assert translated.status_code == 200, translated.text
        english = translated.json()["text"]
        assert english.strip() and not CJK.search(english) and translated.json()["task"] == "translate"


async def test_whisper_api_errors_carry_detail(whisper_api_settings: Settings, sessions: Any) -> None:
    async with app_client(whisper_api_settings) as http:
        bearer = {"Authorization": "Bearer sk-tarzan"}
        # whisper-api: 401 {"detail": "Invalid token"} for a wrong token (auth is app/services/auth.py's: same status).
        wrong = await http.post(
            "/v1/audio/transcriptions", headers={"Authorization": "Bearer sk-wrong!"}, files=upload(EN)
        )
        assert_error(wrong, 401, "Invalid API key")
        # whisper-api: 422 (FastAPI's list) without a file; here 400 naming the field, as OpenAI answers.
        assert_error(
            await http.post("/v1/audio/transcriptions", headers=bearer, data={"model": "whisper-1"}), 400, "file"
        )
        # whisper-api: 500 "File is not a valid audio file"; here a client error saying what the file is.
        not_audio = await http.post(
            "/v1/audio/transcriptions", headers=bearer, files={"file": ("a.mp3", b"plain text, not audio" * 20)}
        )
        assert_error(not_audio, 415, "")
        damaged = await http.post(
            "/v1/audio/translations", headers=bearer, files={"file": ("a.wav", clip(EN).read_bytes()[:3000])}
        )
        assert_error(damaged, 400, "truncated")


# --- Whisper Local Server -----------------------------------------------------------------------------------------


async def test_local_server_health_and_models(client: httpx.AsyncClient) -> None:
    # `curl http://localhost:8000/health`: its desktop client checks for 200.
    health = await client.get("/health")
    assert health.status_code == 200 and health.json()["status"]
    # `curl http://localhost:8000/v1/models`: its client reads `models`; OpenAI's SDK reads `data`.
    listed = (await client.get("/v1/models")).json()
    assert listed["models"] == listed["data"] and listed["object"] == "list"
    by_id = {m["id"]: m for m in listed["models"]}
    for size in ("tiny", "base", "small", "medium", "large"):  # every size it accepts
        assert by_id[size]["object"] == "model" and by_id[size]["permission"] == []
        assert isinstance(by_id[size]["owned_by"], str)
        assert (await client.get(f"/v1/models/{size}")).status_code == 200


@pytest.mark.model
async def test_local_server_clients_work_unchanged(client: httpx.AsyncClient, with_worker: None) -> None:
    # The doc: `-F "file=@audio.mp3" -F "model=base" -F "language=zh"`.
    documented = await client.post(
        "/v1/audio/transcriptions", files=upload(ZH), data={"model": "base", "language": "zh"}
    )
    assert documented.status_code == 200, documented.text
    body = documented.json()
    assert list(body) == ["text", "language", "duration", "segments", "model", "task"]
    assert cer(body["text"]) <= 0.25
    assert body["language"] == "zh" and body["model"] == "base" and body["task"] == "transcribe"
    assert isinstance(body["duration"], float) and 0 <= body["duration"] < 120  # seconds the request waited
    assert body["segments"] and [s["id"] for s in body["segments"]] == list(range(len(body["segments"])))
    for segment in body["segments"]:
        assert set(segment) == SEGMENT_KEYS
        assert 0 <= segment["start"] <= segment["end"] <= 4.3 and segment["tokens"]
    assert "".join(s["text"] for s in body["segments"]).strip() == body["text"].strip()

    # Its desktop client (WhisperLocalRecognizer): model=<modelSize>, language, task, temperature, and
    # initial_prompt when one is set; it reads text, language and segments.
    desktop = await client.post(
        "/v1/audio/transcriptions",
        files=upload(ZH),
        data={"model": "base", "language": "zh", "task": "transcribe", "temperature": "0", "initial_prompt": "股票"},
    )
    assert desktop.status_code == 200, desktop.text
    assert cer(desktop.json()["text"]) <= 0.25 and desktop.json()["language"] == "zh" and desktop.json()["segments"]

    # response_format text/srt/vtt: the same transcript (as text/plain, as OpenAI answers; see README).
    text = await client.post(
        "/v1/audio/transcriptions",
        files=upload(ZH),
        data={"model": "base", "language": "zh", "response_format": "text"},
    )
    assert text.status_code == 200 and text.text.strip() == body["text"].strip()
    srt = await client.post(
        "/v1/audio/transcriptions", files=upload(ZH), data={"model": "base", "language": "zh", "response_format": "srt"}
    )
    cues = SRT_CUE.findall(srt.text)
    assert [int(c[0]) for c in cues] == list(range(1, len(cues) + 1))
    assert all(len(c[3].split("\n")) <= 2 and max(map(len, c[3].split("\n"))) <= 16 for c in cues)  # README
    assert "".join("".join(c[3].split()) for c in cues) == "".join("".join(s["text"].split()) for s in body["segments"])
    vtt = await client.post(
        "/v1/audio/transcriptions", files=upload(ZH), data={"model": "base", "language": "zh", "response_format": "vtt"}
    )
    assert vtt.text.startswith("WEBVTT\n\n") and body["segments"][0]["text"].strip() in vtt.text

    # The doc: `/v1/audio/translations -F "file=@audio.mp3" -F "model=base"` (English speech here: Chinese to
    # English is in the whisper-api test), and `task=translate` on transcriptions: the same task.
    translated = await client.post("/v1/audio/translations", files=upload(EN), data={"model": "base"})
    assert translated.status_code == 200, translated.text
    assert translated.json()["task"] == "translate" and translated.json()["model"] == "base"
    assert wer(reference(EN), translated.json()["text"]) <= 0.25 and translated.json()["language"] == "en"
    by_task = await client.post(
        "/v1/audio/transcriptions", files=upload(EN), data={"model": "base", "task": "translate"}
    )
    assert by_task.status_code == 200, by_task.text
    assert by_task.json()["task"] == "translate" and by_task.json()["text"] == translated.json()["text"]


async def test_local_server_errors_carry_detail(client: httpx.AsyncClient) -> None:
    audio = upload(EN)
    # Local Server: 500 "转录失败: 不支持的模型大小: ..."; here 404 naming the model, as OpenAI answers.
    assert_error(await client.post("/v1/audio/transcriptions", files=audio, data={"model": "huge"}), 404, "huge")
    assert_error(await client.post("/v1/audio/transcriptions", files=audio, data={"task": "summarise"}), 400, "task")
    bad_temperature = await client.post("/v1/audio/transcriptions", files=audio, data={"temperature": "warm"})
    assert_error(bad_temperature, 400, "temperature")
    both = await client.post("/v1/audio/transcriptions", files=audio, data={"prompt": "a", "initial_prompt": "b"})
    assert_error(both, 400, "not both")
    assert_error(await client.post("/v1/audio/translations", data={"model": "base"}), 400, "file")

"""The WhisperX offline API (../shared/compat/whisperx.md): its documented calls, unchanged, against the real app with a
real worker and model on real audio; the response checked field by field against the spec, and its errors."""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from app.schemas.tasks import ChineseScript
from app.services.chinese import convert_text
from app.settings import Settings
from tests.api.test_speakers_and_script import reference_turns, wrong_speaker_share
from tests.audio import clip, reference, wer
from tests.conftest import app_client
from tests.media_files import NOT_MEDIA
from workers.diarization import Diarizer, Turn, missing_cpu_flags
from workers.engine import FasterWhisperEngine

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
StartWorker = Callable[..., Awaitable[Any]]
SPEAKER = re.compile(r"SPEAKER_\d\d")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """A server whose default model is the bundled tiny.en: on the 30 s phone call it makes the words base makes
    (WER 0.17 both) for a tenth of the CPU. The Chinese clip asks for `base` by name."""
    return make_settings(default_model="tiny.en")


async def transcribe(
    client: httpx.AsyncClient, name: str, params: dict[str, Any] | None = None, timeout: float = 300
) -> httpx.Response:
    """`curl -X POST 'BASE/transcribe?...' -F 'audio_file=@name'`, as the spec's client does."""
    path = clip(name)
    return await client.post(
        "/transcribe", params=params, files={"audio_file": (path.name, path.read_bytes())}, timeout=timeout
    )


def check_shape(body: dict[str, Any], *, speakers: bool) -> list[dict[str, Any]]:
    """Every key, its order, presence and type as whisperX 3.3.4 emits them (spec 2.3); returns the words."""
    assert list(body) == ["segments", "word_segments"]
    words: list[dict[str, Any]] = []
    for segment in body["segments"]:
        keys = ["start", "end", "text", "words"] + ([] if segment["words"] else ["chars"])
        assert list(segment) == keys + (["speaker"] if speakers else []), segment
        assert segment.get("chars", None) is None
        assert 0 <= segment["start"] <= segment["end"]
        assert all(round(segment[key], 3) == segment[key] for key in ("start", "end"))
        assert segment["text"] and segment["text"] == segment["text"].strip()
        for word in segment["words"]:
            assert list(word) == ["word", "start", "end", "score"] + (["speaker"] if speakers else []), word
            assert word["word"] and word["word"] == word["word"].strip()
            assert segment["start"] <= word["start"] <= word["end"] <= segment["end"]
            assert 0 <= word["score"] <= 1
            assert all(round(word[key], 3) == word[key] for key in ("start", "end", "score"))
            if speakers:
                assert SPEAKER.fullmatch(word["speaker"]) and word["speaker"] == segment["speaker"]
        words += segment["words"]
    assert body["word_segments"] == words  # the same words, flattened in order
    for timed in (body["segments"], words):  # in time order
        assert [item["start"] for item in timed] == sorted(item["start"] for item in timed)
    return words


def reference_diarization(
    _: Diarizer, audio: Any, *, min_speakers: int | None = None, max_speakers: int | None = None
) -> list[Turn]:
    """The conversation's reference turns, as Diarizer.diarize returns turns."""
    return [Turn(start, end, speaker) for start, end, speaker in reference_turns()]


@pytest.fixture
def senko_runs(monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether senko diarizes here. On a CPU without AVX-512 it cannot (the worker refuses, see missing_cpu_flags):
    there the reference turns stand in for its answer, so that the WhisperX shape of speakers is still checked."""
    if not missing_cpu_flags():
        return True
    monkeypatch.setattr(Diarizer, "diarize", reference_diarization)
    return False


@pytest.mark.model
async def test_a_conversation_gets_words_and_two_speakers(
    client: httpx.AsyncClient, run_worker: StartWorker, real_engine: FasterWhisperEngine, senko_runs: bool
) -> None:
    await run_worker(real_engine)
    response = await transcribe(client, "diarization/en_2speakers.wav", {"min_speakers": 2, "max_speakers": 3})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.content.startswith(b'{"segments":[{"start":')  # compact, as Starlette's JSONResponse writes
    body = response.json()
    words = check_shape(body, speakers=True)
    assert {segment["speaker"] for segment in body["segments"]} == {"SPEAKER_00", "SPEAKER_01"}
    # Share of the words' time given to the wrong speaker: with the reference turns, tiny.en's word timing error
    # alone (0.10). Diarization accuracy itself is tested in tests/api/test_speakers_and_script.py.
    share = wrong_speaker_share(body, reference_turns())
    print(f"senko ran: {senko_runs}; word time with the wrong speaker {share:.3f}")
    assert share < 0.25
    spoken = " ".join(segment["text"] for segment in body["segments"])
    assert wer(reference("diarization/en_2speakers.wav"), spoken) < 0.4  # a rough phone call (README: ~0.24)
    assert " ".join(word["word"] for word in words).split() == spoken.split()


@pytest.mark.model
async def test_english_words_carry_whispers_times_and_probabilities(
    client: httpx.AsyncClient, run_worker: StartWorker, real_engine: FasterWhisperEngine
) -> None:
    await run_worker(real_engine)
    response = await transcribe(client, "jfk.wav", {"diarize": "false", "language": "en"})
    assert response.status_code == 200, response.text
    body = response.json()
    words = check_shape(body, speakers=False)
    spoken = " ".join(segment["text"] for segment in body["segments"])
    assert wer(reference("jfk.wav"), spoken) < 0.1
    assert [word["word"] for word in words] == spoken.split()
    assert words[0]["start"] < 1.0 and 9.0 < words[-1]["end"] <= 11.0
    # score is Whisper's word probability, rounded: the task's own result says so
    [task] = (await client.get("/v1/tasks")).json()["items"]
    assert (task["priority"], task["language"], task["model"]) == ("high", "en", "tiny.en")
    result = (await client.get(f"/v1/tasks/{task['id']}/result")).json()
    probabilities = [round(w["probability"], 3) for s in result["segments"] for w in s["words"]]
    assert [word["score"] for word in words] == probabilities


@pytest.mark.model
async def test_chinese_comes_one_character_per_word(
    client: httpx.AsyncClient, run_worker: StartWorker, real_engine: FasterWhisperEngine
) -> None:
    await run_worker(real_engine)
    response = await transcribe(client, "zh_aishell_W0121.wav", {"diarize": "false", "model": "base"})
    assert response.status_code == 200, response.text
    assert "\\u" not in response.text  # raw UTF-8, as ensure_ascii=False writes it
    [task] = (await client.get("/v1/tasks")).json()["items"]
    assert (task["model"], task["language"]) == ("base", "zh")
    body = response.json()
    words = check_shape(body, speakers=False)
    assert all(len(word["word"]) == 1 for word in words)
    assert "".join(word["word"] for word in words) == "".join("".join(s["text"] for s in body["segments"]).split())
    heard = convert_text("".join(word["word"] for word in words), ChineseScript.simplified)
    expected = reference("zh_aishell_W0121.wav").strip()
    assert sum(a == b for a, b in zip(heard, expected, strict=False)) >= len(expected) * 0.7


@pytest.mark.model
async def test_without_the_diarize_extra_the_error_names_it(
    client: httpx.AsyncClient,
    run_worker: StartWorker,
    real_engine: FasterWhisperEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "senko", None)  # `import senko` fails, as where the extra is not installed
    await run_worker(real_engine)
    response = await transcribe(client, "cards_003.wav")
    assert response.status_code == 501, response.text
    [message] = response.json().values()
    assert list(response.json()) == ["error"]
    assert "pip install whisper-service[diarize]" in message and "diarize=false" in message


def _issue(response: httpx.Response) -> dict[str, Any]:
    """The one item of FastAPI's 422 body."""
    assert response.status_code == 422, response.text
    assert list(response.json()) == ["detail"]
    [issue] = response.json()["detail"]
    assert {"type", "loc", "msg", "input"} <= set(issue)
    return issue


BAD_PARAMETERS: list[tuple[dict[str, Any], list[str], str]] = [
    ({"min_speakers": "two"}, ["query", "min_speakers"], "int_parsing"),
    ({"max_speakers": "2.5"}, ["query", "max_speakers"], "int_parsing"),
    ({"min_speakers": 0}, ["query", "min_speakers"], "greater_than_equal"),
    ({"max_speakers": 33}, ["query", "max_speakers"], "less_than_equal"),
    ({"min_speakers": 3, "max_speakers": 2}, ["query"], "value_error"),
    ({"num_speakers": 2, "min_speakers": 3}, ["query", "num_speakers"], "value_error"),
    ({"diarize": "false", "max_speakers": 2}, ["query", "max_speakers"], "value_error"),
    ({"diarize": "maybe"}, ["query", "diarize"], "bool_parsing"),
    ({"task": "summarize"}, ["query", "task"], "enum"),
    ({"language": "klingon"}, ["query", "language"], "value_error"),
    ({"model": "large-v9"}, ["query", "model"], "value_error"),
    ({"batch_size": 0}, ["query", "batch_size"], "greater_than_equal"),
    ({"task": "translate"}, ["query", "model"], "value_error"),  # the default, tiny.en, is English-only
    ({"return_char_alignments": "true"}, ["query", "return_char_alignments"], "value_error"),
    ({"hf_token": "hf_xxx"}, ["query", "hf_token"], "value_error"),  # unknown: refused, never ignored
]


async def test_bad_parameters_are_422_in_fastapis_shape(client: httpx.AsyncClient) -> None:
    for params, loc, kind in BAD_PARAMETERS:
        issue = _issue(await transcribe(client, "cards_003.wav", params))
        assert (issue["loc"], issue["type"]) == (loc, kind), (params, issue)
        assert issue["msg"]
    assert (await client.get("/v1/tasks")).json()["total"] == 0  # each was refused before a task existed


async def test_no_file_is_422_naming_audio_file(client: httpx.AsyncClient) -> None:
    assert _issue(await client.post("/transcribe")) == {
        "type": "missing",
        "loc": ["body", "audio_file"],
        "msg": "Field required",
        "input": None,
    }
    wrong_name = await client.post("/transcribe", files={"file": ("jfk.wav", clip("jfk.wav").read_bytes())})
    assert _issue(wrong_name)["loc"] == ["body", "file"]  # an unknown field: refused, not ignored


async def test_a_query_parameter_sent_in_the_form_is_refused(client: httpx.AsyncClient) -> None:
    files = {"audio_file": ("cards.wav", clip("cards_003.wav").read_bytes())}
    issue = _issue(await client.post("/transcribe", files=files, data={"min_speakers": "2"}))
    assert issue["loc"] == ["query", "min_speakers"] and "query string" in issue["msg"]


@pytest.mark.parametrize("kind", sorted(NOT_MEDIA))
async def test_not_media_is_415_with_an_error(client: httpx.AsyncClient, kind: str) -> None:
    filename, make = NOT_MEDIA[kind]
    response = await client.post("/transcribe", files={"audio_file": (filename, make())})
    assert response.status_code == 415, response.text
    assert list(response.json()) == ["error"] and "not audio or video" in response.json()["error"]


async def test_empty_and_damaged_files(client: httpx.AsyncClient) -> None:
    empty = await client.post("/transcribe", files={"audio_file": ("empty.wav", b"")})
    assert empty.status_code == 400 and list(empty.json()) == ["error"], empty.text
    data = clip("jfk.wav").read_bytes()
    damaged = await client.post("/transcribe", files={"audio_file": ("cut.wav", data[: len(data) // 3])})
    issue = _issue(damaged)
    assert issue["loc"] == ["body", "audio_file"] and issue["msg"]


async def test_keys_are_required_where_configured(make_settings: Callable[..., Any]) -> None:
    async with app_client(make_settings(api_keys=["alice:alice-secret-key"])) as http:
        refused = await transcribe(http, "cards_003.wav")
        assert refused.status_code == 401 and list(refused.json()) == ["error"], refused.text
        allowed = await http.post(
            "/transcribe", params={"min_speakers": "x"}, headers={"Authorization": "Bearer alice-secret-key"}
        )
        assert allowed.status_code == 422  # past the key, on to the parameters


async def test_the_route_is_documented(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/transcribe"]["post"]
    assert operation["tags"] == ["whisperx"] and "x-own-errors" not in operation
    assert "wav2vec2" in operation["description"] and "word probability" in operation["description"]
    params = {p["name"] for p in operation["parameters"]}
    assert {"min_speakers", "max_speakers", "language", "model", "batch_size", "diarize"} <= params
    ref = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    body = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert body["required"] == ["audio_file"]
    errors = {code: r["content"]["application/json"]["schema"]["$ref"] for code, r in operation["responses"].items()}
    assert errors["422"].endswith("/WhisperXValidationError") and errors["415"].endswith("/WhisperXError")

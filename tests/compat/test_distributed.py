"""The distributed Whisper service's documented client calls, unchanged, against the real app with a real worker
(spec: ../shared/compat/distributed.md): answers and errors field by field in its shapes, Chinese in Traditional."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import jiwer
import pytest
from huggingface_hub import constants as hub_constants

from app.schemas.tasks import ChineseScript
from app.services.chinese import convert_text
from app.settings import Settings
from tests.audio import clip, reference, wer
from tests.conftest import app_client
from tests.media_files import NOT_MEDIA
from workers.engine import FasterWhisperEngine
from workers.models import model_location

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
MANDARIN, ENGLISH = "zh_aishell_W0121.wav", "librivox_0880.wav"
HAN = re.compile(r"[\u4e00-\u9fff]")
ERROR_KEYS = {"success", "error"}


def cer(ref: str, hyp: str) -> float:
    """Character error rate over the Han characters only (punctuation and spaces left out)."""
    return float(jiwer.cer("".join(HAN.findall(ref)), "".join(HAN.findall(hyp))))


def is_traditional(text: str) -> bool:
    """Holds characters that differ between the scripts, all in their Traditional form."""
    return (
        convert_text(text, ChineseScript.simplified) != text and convert_text(text, ChineseScript.traditional) == text
    )


@pytest.fixture
def large_v3_on_the_hub(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_cache: Path, real_engine: FasterWhisperEngine
) -> Iterator[None]:
    """The model hub, faked at its edge: its local cache holds `large-v3` (as an operator's pre-downloaded model
    sits there), made of the bundled base weights so that it runs here; the worker loads it from local files only."""
    snapshot = tmp_path / "hub" / "models--Systran--faster-whisper-large-v3" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for path in Path(model_location("base", model_cache)).iterdir():
        (snapshot / path.name).symlink_to(path)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(real_engine.pool, "config", replace(real_engine.pool.config, allow_downloads=False))
    yield


def served(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    """A server offering the bundled models and `large-v3` (its documented model name), nothing downloaded."""
    return make_settings(allow_model_downloads=False, extra_models=["large-v3"], **overrides)


def assert_error(response: httpx.Response, status: int, *needles: str) -> None:
    """That service's error shape: exactly `success: false` and a message saying what to fix."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == ERROR_KEYS and body["success"] is False and isinstance(body["error"], str), body
    for needle in needles:
        assert needle in body["error"], body["error"]


@pytest.mark.model
@pytest.mark.usefixtures("large_v3_on_the_hub")
async def test_documented_calls_transcribe_with_traditional_chinese(
    make_settings: Callable[..., Settings],
    run_worker: Callable[..., Awaitable[Any]],
    real_engine: FasterWhisperEngine,
) -> None:
    await run_worker(real_engine)
    async with app_client(served(make_settings)) as http:
        # curl -X POST .../transcribe/file -F "file=@your-audio.mp3" -F "model=large-v3" -F "timestamps=true"
        with clip(MANDARIN).open("rb") as f:
            response = await http.post(
                "/transcribe/file", files={"file": (MANDARIN, f)}, data={"model": "large-v3", "timestamps": "true"}
            )
        assert response.status_code == 200, response.text
        result = response.json()
        assert set(result) == {"success", "text", "process_time", "language", "segments"}
        assert result["success"] is True and result["language"] == "zh"
        assert isinstance(result["process_time"], float) and 0 < result["process_time"] < 120
        text = result["text"]
        assert is_traditional(text), text
        assert cer(convert_text(reference(MANDARIN), ChineseScript.traditional), text) <= 0.3, text
        segments = result["segments"]
        assert segments and all(set(s) == {"start", "end", "text"} for s in segments)
        assert all(isinstance(s["start"], float) and isinstance(s["end"], float) for s in segments)
        assert all(0 <= s["start"] <= s["end"] <= 4.3 for s in segments)
        assert "".join(HAN.findall("".join(s["text"] for s in segments))) == "".join(HAN.findall(text))
        assert all(convert_text(s["text"], ChineseScript.traditional) == s["text"] for s in segments)

        # curl -X POST ".../transcribe/binary?model=large-v3&ext=wav" --data-binary "@your-audio.wav"
        #      -H "Content-Type: application/octet-stream"
        response = await http.post(
            "/transcribe/binary",
            params={"model": "large-v3", "ext": "wav"},
            content=clip(ENGLISH).read_bytes(),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 200, response.text
        english = response.json()
        assert set(english) == {"success", "text", "process_time", "language"}  # no `segments` key without timestamps
        assert english["success"] is True and english["language"] == "en"
        assert wer(reference(ENGLISH), english["text"]) <= 0.2, english["text"]

        # Both ran as high-priority tasks on the model the client named, the upload keeping its name.
        tasks = {t["filename"]: t for t in (await http.get("/v1/tasks")).json()["items"]}
        assert set(tasks) == {MANDARIN, "upload.wav"}
        assert {(t["model"], t["priority"], t["status"]) for t in tasks.values()} == {("large-v3", "high", "completed")}

    # A server whose default script is Simplified still gives these clients Traditional (the same result, reused).
    async with app_client(served(make_settings, default_chinese_script="simplified")) as http:
        with clip(MANDARIN).open("rb") as f:
            response = await http.post("/transcribe/file", files={"file": f}, data={"model": "large-v3"})
        assert response.status_code == 200, response.text
        assert response.json()["text"] == text and "segments" not in response.json()
        newest = (await http.get("/v1/tasks", params={"limit": 1})).json()["items"][0]
        assert (await http.get(f"/v1/tasks/{newest['id']}")).json()["reused_from"] == tasks[MANDARIN]["id"]


async def test_models_and_health(make_settings: Callable[..., Settings]) -> None:
    async with app_client(served(make_settings)) as http:
        models = await http.get("/models")  # curl http://.../models
        assert models.status_code == 200
        assert models.json() == {"success": True, "models": ["base", "tiny.en", "large-v3"], "default": "base"}
        health = await http.get("/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}


async def test_the_docs_describe_its_routes_and_error_shape(make_settings: Callable[..., Settings]) -> None:
    async with app_client(make_settings()) as http:
        spec = (await http.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert schemas["DistributedError"]["required"] == ["success", "error"]
    for path, method in [("/transcribe/file", "post"), ("/transcribe/binary", "post"), ("/models", "get")]:
        operation = spec["paths"][path][method]
        assert operation["tags"] == ["distributed"] and operation["description"]
        errors = {code: r for code, r in operation["responses"].items() if code != "200"}
        assert "422" not in errors and errors  # invalid values are 400 there
        refs = {r["content"]["application/json"]["schema"]["$ref"] for r in errors.values()}
        assert refs == {"#/components/schemas/DistributedError"}
    assert "distributed" in spec["paths"]["/health"]["get"]["tags"]
    # every reference resolves (ReDoc refuses to render a schema with a dangling one)
    names = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert names <= set(schemas), names - set(schemas)


async def test_bad_requests_get_its_error_shape_and_create_no_task(make_settings: Callable[..., Settings]) -> None:
    wav = clip(ENGLISH).read_bytes()
    _, make_png = NOT_MEDIA["png"]
    octet = {"Content-Type": "application/octet-stream"}
    async with app_client(make_settings(allow_model_downloads=False)) as http:
        no_file = await http.post("/transcribe/file", data={"model": "base"}, files={"other": ("x", b"")})
        assert_error(no_file, 400, "Unknown parameter 'other'")
        no_file = await http.post("/transcribe/file", data={"model": "base", "timestamps": "true"})
        assert_error(no_file, 400, "No file", "`file`")
        assert_error(await http.post("/transcribe/file", data={"file": "a.wav"}), 400, "file: send the audio")
        assert_error(await http.post("/transcribe/file", files={"file": ("a.wav", b"")}), 400, "empty")
        assert_error(await http.post("/transcribe/binary?ext=wav", content=b"", headers=octet), 400, "empty")
        not_media = await http.post("/transcribe/file", files={"file": ("a.wav", make_png())})
        assert_error(not_media, 415, "not audio or video")
        assert_error(await http.post("/transcribe/binary", content=make_png(), headers=octet), 415, "not audio")
        text_file = await http.post("/transcribe/file", files={"file": ("notes.txt", b"hello")})
        assert_error(text_file, 400, "Unsupported file type 'txt'", "mp3, wav, ogg, flac, m4a, mp4")
        bad_ext = await http.post("/transcribe/binary?ext=exe", content=wav, headers=octet)
        assert_error(bad_ext, 400, "Unsupported file type 'exe'")
        # The documented model name where this server does not offer it: the message names what it offers.
        large = await http.post("/transcribe/file", files={"file": ("a.wav", wav)}, data={"model": "large-v3"})
        assert_error(large, 400, "Unknown model 'large-v3'", "base, tiny.en")
        unknown = await http.post("/transcribe/binary?model=nope&ext=wav", content=wav, headers=octet)
        assert_error(unknown, 400, "Unknown model 'nope'")
        maybe = await http.post("/transcribe/file", files={"file": ("a.wav", wav)}, data={"timestamps": "maybe"})
        assert_error(maybe, 400, "timestamps must be true or false")
        script = await http.post("/transcribe/binary?chinese_script=klingon", content=wav, headers=octet)
        assert_error(script, 400, "chinese_script")
        assert_error(await http.post("/transcribe/binary?foo=1", content=wav, headers=octet), 400, "'foo'")
        form_body = await http.post(
            "/transcribe/binary", content=wav, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert_error(form_body, 415, "application/octet-stream")
        assert (await http.get("/v1/tasks")).json()["total"] == 0


async def test_a_key_is_needed_where_keys_are_configured(make_settings: Callable[..., Settings]) -> None:
    async with app_client(make_settings(api_keys=["alice:alice-secret-key"])) as http:
        wav = clip(ENGLISH).read_bytes()
        assert_error(await http.post("/transcribe/file", files={"file": ("a.wav", wav)}), 401, "API key")
        assert_error(await http.get("/models"), 401, "API key")
        models = await http.get("/models", headers={"Authorization": "Bearer alice-secret-key"})
        assert models.status_code == 200 and models.json()["success"] is True

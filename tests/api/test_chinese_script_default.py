"""WHISPER_DEFAULT_CHINESE_SCRIPT: the script of Chinese results on every route when a request names none; a
request's `chinese_script` (on the OpenAI routes an extension field) overrides it. Real model, Mandarin clip."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.schemas.tasks import ChineseScript
from app.services.chinese import convert_text
from app.settings import Settings
from tests.api.test_task_lifecycle import wait_status
from tests.audio import clip
from tests.conftest import app_client
from workers.engine import FasterWhisperEngine

pytestmark = [pytest.mark.model, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]
MANDARIN = "zh_aishell_W0121.wav"


async def test_the_default_script_applies_unless_the_request_names_one(
    make_settings: Callable[..., Settings], run_worker: Callable[..., Awaitable[Any]], real_engine: FasterWhisperEngine
) -> None:
    await run_worker(real_engine)
    audio = clip(MANDARIN).read_bytes()
    async with app_client(make_settings(default_chinese_script="traditional")) as http:
        assert (await http.get("/v1/capabilities")).json()["default_chinese_script"] == "traditional"

        async def task(**options: str) -> dict[str, Any]:
            created = await http.post("/v1/tasks", files={"file": (MANDARIN, audio)}, data=options)
            assert created.status_code == 201, created.text
            return await wait_status(http, created.json()["id"], "completed", "failed", timeout=120)

        # /v1/tasks: the default fills in the task's option; `none` keeps the model's own script.
        defaulted, untouched = await task(), await task(chinese_script="none")
        raw = untouched["result"]["text"]
        expected = convert_text(raw, ChineseScript.traditional)
        assert expected != raw, "the model wrote Traditional already: this clip cannot show a conversion"
        assert (
            defaulted["options"]["chinese_script"] == "traditional" and untouched["options"]["chinese_script"] is None
        )
        assert defaulted["result"]["text"] == expected
        assert [s["text"] for s in defaulted["result"]["segments"]] == [
            convert_text(s["text"], ChineseScript.traditional) for s in untouched["result"]["segments"]
        ]
        txt = await http.get(f"/v1/tasks/{defaulted['id']}/subtitles", params={"format": "txt"})
        assert txt.text.strip() == expected.strip()

        # The OpenAI route: the default, then the extension field overriding it, then streamed deltas.
        async def openai(**fields: str) -> str:
            response = await http.post(
                "/v1/audio/transcriptions", files={"file": (MANDARIN, audio)}, data={"model": "whisper-1", **fields}
            )
            assert response.status_code == 200, response.text
            return response.text

        assert json.loads(await openai())["text"] == expected
        assert json.loads(await openai(chinese_script="none"))["text"] == raw  # reuses the `none` task's result
        events = [json.loads(line[6:]) for line in (await openai(stream="true")).splitlines() if line]
        deltas = "".join(e["delta"] for e in events if e["type"] == "transcript.text.delta")
        assert events[-1] == {"type": "transcript.text.done", "text": expected}
        assert deltas.strip() == expected.strip()

        # A value that is no script: refused, naming the field, on both routes.
        bad = await http.post("/v1/tasks", files={"file": (MANDARIN, audio)}, data={"chinese_script": "klingon"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "chinese_script"
        bad = await http.post(
            "/v1/audio/transcriptions",
            files={"file": (MANDARIN, audio)},
            data={"model": "whisper-1", "chinese_script": "klingon"},
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "chinese_script"

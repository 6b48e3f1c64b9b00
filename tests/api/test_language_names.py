"""Language names in requests and in the `LANGUAGE` alias are stored as codes, so the worker can use them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.audio import clip
from tests.conftest import wait_for
from tests.fakes import FakeEngine

# Request handling before and beside the queue: the database kind plays no part (tests/integration covers it).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LANGUAGE", "Chinese")  # as other Whisper servers are configured
    return make_settings()


async def upload(client: httpx.AsyncClient, **data: str) -> httpx.Response:
    with clip("jfk.wav").open("rb") as f:
        return await client.post("/v1/tasks", files={"file": ("jfk.wav", f, "audio/wav")}, data=data)


async def test_language_names_are_stored_as_codes(client: httpx.AsyncClient) -> None:
    for given, stored in (("Chinese", "zh"), ("french", "fr"), ("EN", "en"), ("auto", "zh")):
        response = await upload(client, language=given)
        assert response.status_code == 201, response.text
        assert response.json()["language"] == stored, given
    bad = await upload(client, language="Klingon")
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "language" and "not a language" in bad.text


async def test_a_task_without_language_runs_under_the_language_alias(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]]
) -> None:
    created = await upload(client)
    assert created.status_code == 201 and created.json()["language"] == "zh"
    await run_worker(FakeEngine())

    async def finished() -> dict[str, Any] | None:
        task: dict[str, Any] = (await client.get(f"/v1/tasks/{created.json()['id']}")).json()
        return task if task["status"] in ("completed", "failed") else None

    done = await wait_for(finished)
    assert (done["status"], done["error"], done["result"]["language"]) == ("completed", None, "zh")


async def test_the_openai_route_takes_language_names(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]]
) -> None:
    await run_worker(FakeEngine())  # it reports the language it was asked for, and refuses names as faster-whisper does
    data = clip("jfk.wav").read_bytes()
    for given, code in (("French", "fr"), (None, "zh")):
        form = {"model": "whisper-1", "response_format": "verbose_json"} | ({"language": given} if given else {})
        response = await client.post("/v1/audio/transcriptions", files={"file": ("jfk.wav", data)}, data=form)
        assert response.status_code == 200, response.text
        assert response.json()["language"] == code
    bad = await client.post(
        "/v1/audio/transcriptions", files={"file": ("jfk.wav", data)}, data={"model": "whisper-1", "language": "Elvish"}
    )
    assert bad.status_code == 400 and "not a language" in bad.json()["error"]["message"]

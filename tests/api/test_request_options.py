"""Task options from the query string with any body, unknown parameters refused, and no transaction held across an
upload (issue 12, items 10 and 21)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.audio import clip
from tests.conftest import app_client


def field_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    body = response.json()
    return [e["field"] for e in body["errors"]]


async def test_query_options_apply_to_a_multipart_upload(client: httpx.AsyncClient) -> None:
    with clip("jfk.wav").open("rb") as f:
        response = await client.post(
            "/v1/tasks?priority=high&task_type=translate&beam_size=3",
            files={"file": ("jfk.wav", f, "audio/wav")},
            data={"word_timestamps": "true"},
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["priority"], body["task_type"]) == ("high", "translate")
    assert body["options"] == {"beam_size": 3, "word_timestamps": True}


async def test_query_options_apply_to_a_json_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tasks?priority=low", json={"file_url": "https://example.com/a.mp3"})
    assert response.status_code == 201, response.text
    assert response.json()["priority"] == "low"


async def test_query_options_apply_to_a_platform_link(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/tasks/tiktok?priority=high", json={"url": "https://www.tiktok.com/@a/video/7300000000000000000"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["priority"] == "high"


@pytest.mark.parametrize("body_kind", ["multipart", "json"])
async def test_a_field_given_twice_with_different_values_is_refused(client: httpx.AsyncClient, body_kind: str) -> None:
    if body_kind == "multipart":
        with clip("jfk.wav").open("rb") as f:
            response = await client.post(
                "/v1/tasks?priority=high", files={"file": ("jfk.wav", f, "audio/wav")}, data={"priority": "low"}
            )
    else:
        response = await client.post(
            "/v1/tasks?beam_size=3", json={"file_url": "https://example.com/a.mp3", "beam_size": 4}
        )
    assert field_of(response) == ["priority" if body_kind == "multipart" else "beam_size"]


async def test_the_same_value_in_both_places_is_accepted(client: httpx.AsyncClient) -> None:
    body = {"file_url": "https://example.com/a.mp3", "beam_size": 3}
    response = await client.post("/v1/tasks?beam_size=3", json=body)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("kind", ["multipart-query", "multipart-form", "raw-query", "json-body", "json-query"])
async def test_an_unknown_parameter_is_refused_by_name(client: httpx.AsyncClient, kind: str) -> None:
    wav = clip("jfk.wav").read_bytes()
    if kind == "multipart-query":
        response = await client.post("/v1/tasks?prioritty=high", files={"file": ("a.wav", wav, "audio/wav")})
    elif kind == "multipart-form":
        response = await client.post(
            "/v1/tasks", files={"file": ("a.wav", wav, "audio/wav")}, data={"prioritty": "high"}
        )
    elif kind == "raw-query":
        response = await client.post("/v1/tasks?prioritty=high", content=wav, headers={"Content-Type": "audio/wav"})
    elif kind == "json-body":
        response = await client.post("/v1/tasks", json={"file_url": "https://example.com/a.mp3", "prioritty": "x"})
    else:
        response = await client.post("/v1/tasks?prioritty=high", json={"file_url": "https://example.com/a.mp3"})
    assert field_of(response) == ["prioritty"]


async def test_a_slow_upload_holds_no_lock(make_settings: Callable[..., Settings], sessions: Any) -> None:
    """On SQLite every transaction holds the write lock: none may span an upload (with a per-key limit set)."""
    settings = make_settings(max_concurrent_tasks=5, api_keys=["alice:alice-secret-1", "bob:bob-secret-11"])
    alice = {"Authorization": "Bearer alice-secret-1"}
    bob = {"Authorization": "Bearer bob-secret-11"}
    wav = clip("jfk.wav").read_bytes()
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield wav[:1000]
        started.set()
        await release.wait()  # the upload stalls here until the other requests are done
        yield wav[1000:]

    async with app_client(settings) as http:
        upload = asyncio.create_task(
            http.post("/v1/tasks", content=slow_body(), headers={**alice, "Content-Type": "audio/wav"})
        )
        await started.wait()
        listed = await http.get("/v1/tasks", headers=bob)
        assert listed.status_code == 200, listed.text
        created = await http.post("/v1/tasks", json={"file_url": "https://example.com/a.mp3"}, headers=bob)
        assert created.status_code == 201, created.text
        mine = await http.post("/v1/tasks", json={"file_url": "https://example.com/b.mp3"}, headers=alice)
        assert mine.status_code == 201, mine.text
        release.set()
        uploaded = await upload
        assert uploaded.status_code == 201, uploaded.text


@pytest.mark.parametrize("path", ["/v1/tasks?statuss=queued", "/v1/workers?x=1", "/health?verbose=1"])
async def test_an_unknown_query_parameter_of_a_read_is_refused(client: httpx.AsyncClient, path: str) -> None:
    assert field_of(await client.get(path)) == [path.split("?")[1].split("=")[0]]


async def test_layout_parameters_of_subtitles_are_known(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/tasks/some-id/subtitles?max_line_width=42&format=srt&highlight_words=true")
    assert response.status_code == 404, response.text


@pytest.mark.parametrize(
    ("path", "data", "name"),
    [
        ("/v1/audio/transcriptions", {"model": "whisper-1", "languag": "en"}, "languag"),
        ("/v1/audio/translations?priority=high", {"model": "whisper-1"}, "priority"),
        ("/v1/audio/translations", {"model": "whisper-1", "language": "en"}, "language"),
    ],
)
async def test_the_openai_routes_refuse_unknown_parameters(
    client: httpx.AsyncClient, path: str, data: dict[str, str], name: str
) -> None:
    response = await client.post(path, files={"file": ("a.wav", clip("jfk.wav").read_bytes())}, data=data)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == name

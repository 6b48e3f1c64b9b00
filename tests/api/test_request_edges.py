"""Edges of request parsing found by review: name lengths and characters, query options of every body route, the
Allow header of 405 answers (review findings 3, 5, 9 and 16)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from tests.audio import clip
from tests.conftest import migrated_sqlite


@pytest.fixture
async def db_url(tmp_path: Path) -> str:
    """Request parsing: the database holds nothing these tests look at, so SQLite stands for all three."""
    return await migrated_sqlite(tmp_path)


def errors_of(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    return [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize("name", ["f" * 5000, "a\x00\r\n<script>.wav", "tab\there.wav"])
async def test_an_explicit_filename_too_long_or_with_control_characters_is_refused(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.post(
        "/v1/tasks",
        params={"filename": name},
        content=clip("jfk.wav").read_bytes(),
        headers={"content-type": "audio/wav"},
    )
    assert errors_of(response) == ["filename"]


async def test_a_multipart_file_name_is_cleaned_not_refused(client: httpx.AsyncClient) -> None:
    name = "a\x7fb" + "x" * 3000 + ".wav"  # httpx escapes CR, LF and NUL itself
    response = await client.post("/v1/tasks", files={"file": (name, clip("jfk.wav").read_bytes(), "audio/wav")})
    assert response.status_code == 201, response.text
    stored = response.json()["filename"]
    assert len(stored) == 255 and stored.startswith("abxxx") and stored.endswith(".wav")


async def test_a_multipart_upload_takes_filename_from_the_query_or_a_field(client: httpx.AsyncClient) -> None:
    data = clip("jfk.wav").read_bytes()
    by_query = await client.post("/v1/tasks?filename=talk.wav", files={"file": ("x.wav", data, "audio/wav")})
    assert by_query.status_code == 201, by_query.text
    assert by_query.json()["filename"] == "talk.wav"
    by_field = await client.post(
        "/v1/tasks", files={"file": ("x.wav", data, "audio/wav")}, data={"filename": "field.wav"}
    )
    assert by_field.status_code == 201, by_field.text
    assert by_field.json()["filename"] == "field.wav"


async def test_an_overlong_callback_secret_is_refused(client: httpx.AsyncClient) -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 300).decode()
    response = await client.post("/v1/tasks", json={"file_url": "https://example.com/a.mp3", "callback_secret": secret})
    assert errors_of(response) == ["callback_secret"]


async def test_a_json_list_of_temperatures_in_a_form_field(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/tasks",
        files={"file": ("jfk.wav", clip("jfk.wav").read_bytes(), "audio/wav")},
        data={"temperature": "[0.1,0.2]"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["options"]["temperature"] == [0.1, 0.2]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PATCH", "/v1/tasks", "GET, POST"),
        ("OPTIONS", "/v1/tasks", "GET, POST"),
        ("PUT", "/health", "GET"),
        ("PATCH", "/v1/tasks/some-id", "DELETE, GET"),
        ("PUT", "/v1/tasks/tiktok", "POST"),
    ],
)
async def test_405_names_the_allowed_methods(client: httpx.AsyncClient, method: str, path: str, allowed: str) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allowed


async def test_extract_audio_takes_options_from_the_query_and_refuses_unknown_ones(client: httpx.AsyncClient) -> None:
    files = {"file": ("talk.wav", clip("jfk.wav").read_bytes())}
    by_query = await client.post("/v1/media/extract-audio?output_format=flac", files=files)
    assert by_query.status_code == 200, by_query.text
    assert by_query.headers["content-type"] == "audio/flac"
    assert errors_of(await client.post("/v1/media/extract-audio", files=files, data={"bogus": "1"})) == ["bogus"]
    assert errors_of(await client.post("/v1/media/extract-audio?bogus=1", files=files)) == ["bogus"]
    differing = await client.post("/v1/media/extract-audio?channels=2", files=files, data={"channels": "1"})
    assert errors_of(differing) == ["channels"]


@pytest.mark.parametrize("path", ["/v1/audio/transcriptions", "/v1/audio/translations"])
async def test_openai_fields_in_the_query_are_refused_naming_them(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(
        f"{path}?response_format=text", files={"file": ("a.wav", clip("jfk.wav").read_bytes())}, data={"model": "tiny"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "response_format" and "form field" in error["message"]

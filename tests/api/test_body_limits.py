"""Request bodies on every upload route: past the limit is 413, not-media is 415, and forms and JSON are bounded."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.conftest import app_client
from tests.media_files import NOT_MEDIA

# Request handling before and beside the queue: the database kind plays no part (tests/integration covers it).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

UPLOAD_ROUTES = [
    "/v1/tasks",
    "/v1/tasks?raw",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/media/extract-audio",
]
OPENAI_FIELDS = {"model": "whisper-1"}


def _request(route: str, name: str, data: bytes | AsyncIterator[bytes]) -> dict[str, Any]:
    """Keyword arguments of `client.post` sending `data` as the media of `route`."""
    if route.endswith("?raw"):
        return {"url": "/v1/tasks", "content": data, "headers": {"Content-Type": "application/octet-stream"}}
    assert isinstance(data, bytes)
    fields = OPENAI_FIELDS if route.startswith("/v1/audio") else {}
    return {"url": route, "files": {"file": (name, data)}, "data": fields}


def _error(route: str, response: httpx.Response) -> tuple[str, str]:
    """(type, message) of an error response, in OpenAI's shape on its routes and problem+json elsewhere."""
    body = response.json()
    if route.startswith("/v1/audio"):
        assert set(body) == {"error", "detail"} and body["detail"] == body["error"]["message"], body
        return body["error"]["type"], body["error"]["message"]
    assert response.headers["content-type"] == "application/problem+json"
    return body["type"].rsplit(":", 1)[-1], body["detail"]


@pytest.mark.parametrize("route", UPLOAD_ROUTES)
async def test_a_body_past_the_upload_limit_is_413_naming_the_limit(
    route: str, make_settings: Callable[..., Settings]
) -> None:
    big = b"\0" * (8 * 1024 * 1024)  # past the limit plus any room the server leaves for form fields
    async with app_client(make_settings(max_upload_bytes=10_000)) as http:
        response = await http.post(**_request(route, "big.wav", big))
    assert response.status_code == 413, response.text
    kind, message = _error(route, response)
    assert kind == ("invalid_request_error" if route.startswith("/v1/audio") else "UploadTooLarge")
    assert "10000 bytes" in message


@pytest.mark.parametrize("kind", sorted(NOT_MEDIA))
@pytest.mark.parametrize("route", UPLOAD_ROUTES)
async def test_images_and_documents_are_415_not_audio_or_video(
    route: str, kind: str, client: httpx.AsyncClient
) -> None:
    name, build = NOT_MEDIA[kind]
    response = await client.post(**_request(route, name, build()))
    assert response.status_code == 415, response.text
    error_type, message = _error(route, response)
    assert error_type == ("invalid_request_error" if route.startswith("/v1/audio") else "UnsupportedMedia")
    assert "not audio or video" in message


class CountingBody:
    """A multipart body produced lazily, counting how much of it the server asked for."""

    def __init__(self, parts: list[tuple[str, str | None, bytes]], chunk: int = 16 * 1024) -> None:
        self.boundary = "limits-test-boundary"
        self.chunks: list[bytes] = []
        for field, filename, data in parts:
            disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
            head = f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
            payload = head + data + b"\r\n"
            self.chunks += [payload[i : i + chunk] for i in range(0, len(payload), chunk)]
        self.chunks.append(f"--{self.boundary}--\r\n".encode())
        self.sent = 0

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.chunks:
            self.sent += 1
            yield piece


FORM_ROUTES = ["/v1/tasks", "/v1/audio/transcriptions", "/v1/media/extract-audio"]


@pytest.mark.parametrize("route", FORM_ROUTES)
async def test_many_file_parts_are_refused_before_they_are_read(route: str, client: httpx.AsyncClient) -> None:
    fields = [(k, None, v.encode()) for k, v in OPENAI_FIELDS.items()] if route.startswith("/v1/audio") else []
    body = CountingBody([*fields, *[("file", f"{i}.wav", b"x" * 64 * 1024) for i in range(200)]])
    response = await client.post(route, content=body, headers={"Content-Type": body.content_type})
    assert response.status_code == 400, response.text
    assert "Too many files. Maximum number of files is 1." in response.text
    # The server stopped reading at the second file: it never held the other 198 parts (12 MB), in memory or not.
    assert body.sent < len(body.chunks) / 10


@pytest.mark.parametrize("route", FORM_ROUTES)
async def test_many_fields_and_large_fields_are_refused_as_they_arrive(route: str, client: httpx.AsyncClient) -> None:
    many = CountingBody([(f"field{i}", None, b"1") for i in range(5000)], chunk=1024)
    response = await client.post(route, content=many, headers={"Content-Type": many.content_type})
    assert response.status_code == 400, response.text
    assert "Too many fields. Maximum number of fields is" in response.text
    assert many.sent < len(many.chunks) / 10
    large = CountingBody([("notes", None, b"n" * 4 * 1024 * 1024)])
    response = await client.post(route, content=large, headers={"Content-Type": large.content_type})
    assert response.status_code == 400, response.text
    assert "Part exceeded maximum size of 64KB." in response.text
    assert large.sent < len(large.chunks) / 10


async def _streamed(data: bytes, counter: list[int]) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 64 * 1024):
        counter[0] += 1
        yield data[i : i + 64 * 1024]


@pytest.mark.parametrize("route", ["/v1/tasks", "/v1/tasks/tiktok", "/v1/tasks/00000000-0000-0000-0000-0/summaries"])
@pytest.mark.parametrize("declared", [True, False])
async def test_a_large_json_body_is_413_before_it_is_read(
    route: str, declared: bool, make_settings: Callable[..., Settings]
) -> None:
    """JSON bodies stop at WHISPER_MAX_BODY_BYTES, far below the upload limit, whether or not they declare a length."""
    data = json.dumps({"file_url": "https://example.com/a.mp3", "initial_prompt": "x" * 8 * 1024 * 1024}).encode()
    counter = [0]
    async with app_client(make_settings(max_body_bytes=256 * 1024)) as http:
        content = data if declared else _streamed(data, counter)
        response = await http.post(route, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 413, response.text
    assert response.json()["type"].endswith("BodyTooLarge")
    assert "262144 bytes" in response.json()["detail"]
    if not declared:
        assert counter[0] < len(data) / (64 * 1024) / 10

"""POST /v1/tasks: every way in, every format, and every bad input refused with no task created."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import MediaChunk, Task
from app.main import create_app
from app.settings import Settings
from tests.audio import clip
from tests.conftest import app_client
from tests.media_files import AUDIO_FORMATS, load_pcm, write_audio, write_video

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture(scope="module")
def jfk_pcm() -> np.ndarray:
    return load_pcm(clip("jfk.wav"))


async def count_tasks(sessions: Sessions) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(Task)) or 0


async def test_multipart_upload_creates_a_queued_task(client: httpx.AsyncClient, sessions: Sessions) -> None:
    with clip("jfk.wav").open("rb") as f:
        response = await client.post(
            "/v1/tasks",
            files={"file": ("jfk.wav", f, "audio/wav")},
            data={"language": "en", "priority": "high", "beam_size": "3", "temperature": "0,0.2"},
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "queued" and body["priority"] == "high" and body["language"] == "en"
    assert body["filename"] == "jfk.wav" and body["source"] == "upload" and body["duration"] == 11.0
    assert body["options"] == {"beam_size": 3, "temperature": [0.0, 0.2]}
    async with sessions() as session:
        chunks = await session.scalar(select(func.count()).where(MediaChunk.task_id == body["id"]))
    assert chunks == 1  # 11 s of 16 kHz Opus is about 44 KB: one chunk


async def test_raw_body_with_query_options(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/tasks?task_type=translate&priority=low&filename=talk.mp3&word_timestamps=true",
        content=clip("jfk.mp3").read_bytes(),
        headers={"Content-Type": "audio/mpeg"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["task_type"], body["priority"], body["filename"]) == ("translate", "low", "talk.mp3")
    assert body["options"] == {"word_timestamps": True}


async def test_octet_stream_and_video_bodies(client: httpx.AsyncClient) -> None:
    for content_type, name in (("application/octet-stream", "jfk.wav"), ("video/mp4", "jfk_video.mp4")):
        response = await client.post(
            "/v1/tasks", content=clip(name).read_bytes(), headers={"Content-Type": content_type}
        )
        assert response.status_code == 201, response.text
        assert response.json()["duration"] == pytest.approx(11.0, abs=0.05)


async def test_file_url_json_and_form(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tasks", json={"file_url": "https://example.com/a.mp3", "model": "tiny.en"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["source"], body["source_url"], body["duration"], body["model"]) == (
        "url",
        "https://example.com/a.mp3",
        None,
        "tiny.en",
    )
    response = await client.post("/v1/tasks", data={"file_url": "https://example.com/b.mp3"})
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("kind", sorted(AUDIO_FORMATS))
async def test_every_audio_format_is_accepted(
    kind: str, client: httpx.AsyncClient, tmp_path: Path, jfk_pcm: np.ndarray
) -> None:
    container, ext, codec = AUDIO_FORMATS[kind]
    path = write_audio(tmp_path / f"jfk.{ext}", jfk_pcm, container=container, codec=codec)
    with path.open("rb") as f:
        response = await client.post("/v1/tasks", files={"file": (path.name, f)})
    assert response.status_code == 201, response.text
    assert response.json()["duration"] == pytest.approx(11.0, abs=0.1)


def _truncated(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 3])
    return target


BAD_INPUTS: dict[str, tuple[Callable[[Path, np.ndarray], Path], int, str]] = {
    "empty": (lambda d, _: _write(d / "empty.wav", b""), 400, "EmptyUpload"),
    "text": (lambda d, _: _write(d / "notes.mp3", b"hello, this is not audio at all\n" * 50), 415, "UnsupportedMedia"),
    "truncated-wav": (lambda d, _: _truncated(clip("jfk.wav"), d / "cut.wav"), 422, "UnreadableMedia"),
    "truncated-mp4": (lambda d, _: _truncated(clip("jfk_video.mp4"), d / "cut.mp4"), 422, "UnreadableMedia"),
    "video-without-audio": (lambda d, _: write_video(d / "silent.mp4", seconds=2, audio=None), 422, "NoAudioStream"),
    "hls-playlist": (
        lambda d, _: _write(d / "list.m3u8", b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n"),
        415,
        "UnsupportedMedia",
    ),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _wav_declaring_channels(path: Path, channels: int) -> Path:
    """8-bit PCM WAV whose header declares `channels` (65,535 fits the header; FFmpeg cannot decode it)."""
    data = b"\x80" * channels * 10
    fmt = struct.pack("<IHHIIHH", 16, 1, channels, 16000, 16000 * channels, channels, 8)
    riff = b"WAVE" + b"fmt " + fmt + b"data" + struct.pack("<I", len(data)) + data
    return _write(path, b"RIFF" + struct.pack("<I", len(riff)) + riff)


FFCONCAT = b"ffconcat version 1.0\nfile /etc/passwd\nfile jfk.wav\n"


@pytest.mark.parametrize(
    ("build", "status", "problem", "needle"),
    [
        (lambda d: _write(d / "list.ffconcat", FFCONCAT), 415, "UnsupportedMedia", "text, not audio or video"),
        (lambda d: _write(d / "list.wav", FFCONCAT), 415, "UnsupportedMedia", "text, not audio or video"),
        (lambda d: _wav_declaring_channels(d / "wide.wav", 65535), 422, "UnreadableMedia", "declares 65535 channels"),
    ],
    ids=["ffconcat", "ffconcat-named-wav", "wav-65535-channels"],
)
@pytest.mark.parametrize("path", ["/v1/tasks", "/v1/media/extract-audio"])
async def test_crafted_files_get_a_clear_message(
    client: httpx.AsyncClient,
    tmp_path: Path,
    path: str,
    build: Callable[[Path], Path],
    status: int,
    problem: str,
    needle: str,
) -> None:
    """No "Invalid argument" from FFmpeg: text is not media (415), an impossible channel count says so (422)."""
    media = build(tmp_path)
    response = await client.post(path, files={"file": (media.name, media.read_bytes())})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"].endswith(problem) and needle in body["detail"] and "Invalid argument" not in body["detail"]


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
async def test_bad_media_is_refused_and_creates_no_task(
    case: str, client: httpx.AsyncClient, sessions: Sessions, tmp_path: Path, jfk_pcm: np.ndarray
) -> None:
    build, status, problem = BAD_INPUTS[case]
    path = build(tmp_path, jfk_pcm)
    for send in ("multipart", "raw"):
        if send == "multipart":
            with path.open("rb") as f:
                response = await client.post("/v1/tasks", files={"file": (path.name, f)})
        else:
            response = await client.post(
                "/v1/tasks", content=path.read_bytes(), headers={"Content-Type": "application/octet-stream"}
            )
        assert response.status_code == status, (send, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["type"].endswith(problem) and body["status"] == status and body["detail"]
    assert await count_tasks(sessions) == 0


async def _client_for(settings: Settings) -> tuple[httpx.AsyncClient, object]:
    app = create_app(settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test"), app


async def test_too_long_audio_is_refused(make_settings: Callable[..., Settings], sessions: Sessions) -> None:
    async with app_client(make_settings(max_audio_seconds=5)) as http:
        response = await http.post("/v1/tasks", files={"file": ("jfk.wav", clip("jfk.wav").read_bytes())})
    assert response.status_code == 422
    assert response.json()["type"].endswith("AudioTooLong") and "at most 5 s" in response.json()["detail"]
    assert await count_tasks(sessions) == 0


@pytest.mark.parametrize("send", ["multipart", "raw", "raw-chunked"])
async def test_too_large_upload_is_refused_while_streaming(
    send: str, make_settings: Callable[..., Settings], sessions: Sessions
) -> None:
    app = create_app(make_settings(max_upload_bytes=100_000))
    data = clip("jfk.wav").read_bytes()  # 352 KB
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        if send == "multipart":
            response = await http.post("/v1/tasks", files={"file": ("jfk.wav", data)})
        elif send == "raw":
            response = await http.post("/v1/tasks", content=data, headers={"Content-Type": "audio/wav"})
        else:

            async def body():  # type: ignore[no-untyped-def]
                for i in range(0, len(data), 16_384):
                    yield data[i : i + 16_384]

            response = await http.post("/v1/tasks", content=body(), headers={"Content-Type": "audio/wav"})
    assert response.status_code == 413, response.text
    assert response.json()["type"].endswith("UploadTooLarge")
    assert await count_tasks(sessions) == 0


@pytest.mark.parametrize(
    ("request_kwargs", "status", "needle"),
    [
        ({"headers": {"Content-Type": "text/plain"}, "content": b"hi"}, 415, "multipart/form-data"),
        ({}, 422, "file_url"),
        ({"json": {"language": "en"}}, 422, "file_url"),
        ({"json": ["not", "an", "object"]}, 422, "object"),
        ({"content": b"{bad json", "headers": {"Content-Type": "application/json"}}, 422, "JSON"),
        ({"json": {"file_url": "ftp://example.com/a.mp3"}}, 422, "file_url"),
        ({"json": {"file_url": "http://127.0.0.1:8080/a.mp3"}}, 422, "not a public address"),
        ({"json": {"file_url": "http://2130706433/a.mp3"}}, 422, "127.0.0.1 is not a public address"),
        ({"json": {"file_url": "http://[::1]/a.mp3"}}, 422, "not a public address"),
        ({"json": {"file_url": "http://169.254.169.254/latest/meta-data"}}, 422, "not a public address"),
        ({"json": {"file_url": "http://localhost/a.mp3"}}, 422, "not a public host"),
        ({"json": {"file_url": "https://e.com/a.mp3", "callback_url": "http://10.0.0.1/hook"}}, 422, "10.0.0.1"),
        ({"json": {"file_url": "https://e.com/a.mp3", "beam_size": 99}}, 422, "beam_size"),
        ({"json": {"file_url": "https://e.com/a.mp3", "model": "gpt-9"}}, 422, "gpt-9"),
        ({"json": {"file_url": "https://e.com/a.mp3", "model": "tiny.en", "task_type": "translate"}}, 422, "English"),
        ({"data": {"file": "just text"}}, 422, "file"),
    ],
)
async def test_invalid_requests_get_clear_errors(
    client: httpx.AsyncClient, sessions: Sessions, request_kwargs: dict[str, object], status: int, needle: str
) -> None:
    response = await client.post("/v1/tasks", **request_kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert needle in response.json()["detail"]
    assert await count_tasks(sessions) == 0


async def test_validation_error_names_the_field(client: httpx.AsyncClient) -> None:
    with clip("jfk.wav").open("rb") as f:
        response = await client.post("/v1/tasks", files={"file": f}, data={"temperature": "3", "priority": "asap"})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"temperature", "priority"}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("POST", "/v1/tasks", {"json": {"file_url": "https://e.com/a.mp3", "model": "nope"}}, "model"),
        ("POST", "/v1/tasks/tiktok", {"json": {"text": "no link in here"}}, "text"),
        ("GET", "/v1/tasks", {"params": {"cursor": "!!!"}}, "cursor"),
        ("GET", "/v1/tasks", {"params": {"created_after": "2026-01-01T00:00:00"}}, "created_after"),
    ],
)
async def test_every_invalid_field_is_named_in_errors(
    client: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, object], field: str
) -> None:
    """The README documents `errors` naming each invalid field: the service's own checks answer the same shape."""
    response = await client.request(method, path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 422, response.text
    body = response.json()
    assert [e["field"] for e in body["errors"]] == [field], body
    assert body["errors"][0]["message"] == body["detail"]
    assert "field" not in body


async def test_file_and_file_url_together(client: httpx.AsyncClient) -> None:
    with clip("jfk.wav").open("rb") as f:
        response = await client.post("/v1/tasks", files={"file": f}, data={"file_url": "https://e.com/a.mp3"})
    assert response.status_code == 422 and "not both" in response.json()["detail"]

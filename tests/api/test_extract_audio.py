"""POST /v1/media/extract-audio: the audio of a video, converted, as a download."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from pathlib import Path

import av
import httpx
import pytest

from app.settings import Settings
from tests.audio import clip
from tests.conftest import app_client
from tests.media_files import silent_flac

# Request handling before and beside the queue: the database kind plays no part (tests/integration covers it).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def probe(data: bytes) -> tuple[str, int, int, str, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        seconds = float(stream.duration * stream.time_base) if stream.duration else container.duration / 1e6
        return container.format.name, stream.rate, stream.channels, stream.format.name, seconds


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, ("wav", 16000, 1, "s16")),
        (
            {"output_format": "wav", "sample_rate": "44100", "channels": "2", "bit_depth": "24"},
            ("wav", 44100, 2, "s32"),
        ),
        ({"output_format": "flac", "sample_rate": "22050"}, ("flac", 22050, 1, "s16")),
        ({"output_format": "mp3", "sample_rate": "24000"}, ("mp3", 24000, 1, "fltp")),
        ({"output_format": "opus", "sample_rate": "48000", "channels": "2"}, ("ogg", 48000, 2, "fltp")),
    ],
)
async def test_the_audio_of_a_video_is_extracted(
    client: httpx.AsyncClient, fields: dict[str, str], expected: tuple[str, int, int, str]
) -> None:
    response = await client.post(
        "/v1/media/extract-audio", files={"file": ("talk.mp4", clip("jfk_video.mp4").read_bytes())}, data=fields
    )
    assert response.status_code == 200, response.text
    fmt = fields.get("output_format", "wav")
    assert response.headers["content-disposition"] == f'attachment; filename="talk.{fmt}"'
    container, rate, channels, sample_format, seconds = probe(response.content)
    assert (container, rate, channels) == expected[:3]
    assert sample_format.startswith(expected[3])
    assert seconds == pytest.approx(11.0, abs=0.1)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"output_format": "opus", "sample_rate": "44100"}, "sample_rate"),
        ({"output_format": "flac", "bit_depth": "32"}, "bit_depth"),
        ({"channels": "6"}, "channels"),
        ({"output_format": "aiff"}, "output_format"),
        ({"sample_rate": "4000"}, "sample_rate"),
    ],
)
async def test_bad_parameters_name_the_field(client: httpx.AsyncClient, fields: dict[str, str], field: str) -> None:
    response = await client.post(
        "/v1/media/extract-audio", files={"file": ("a.wav", clip("jfk.wav").read_bytes())}, data=fields
    )
    assert response.status_code == 422 and field in response.json()["detail"], response.text


async def test_non_media_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/media/extract-audio", files={"file": ("a.txt", b"no sound here" * 100)})
    assert response.status_code == 415 and response.json()["type"].endswith("UnsupportedMedia")


@pytest.mark.parametrize("declared", [True, False], ids=["declared-length", "undeclared-length"])
async def test_audio_longer_than_the_limit_is_refused(
    declared: bool, make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit tasks have (WHISPER_MAX_AUDIO_SECONDS) holds here too, also when the file does not say its length."""
    long = silent_flac(tmp_path / "silence.flac", seconds=300, declare_length=declared)  # about 60 KB
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    async with app_client(make_settings(max_audio_seconds=30)) as http:
        response = await http.post("/v1/media/extract-audio", files={"file": ("silence.flac", long.read_bytes())})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"].endswith("AudioTooLong") and "30 s" in body["detail"]
    assert list(scratch.iterdir()) == []


async def test_output_past_the_size_cap_is_refused(
    make_settings: Callable[..., Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """11 s of 48 kHz stereo 32-bit WAV is 4.2 MB: past a 1 MB cap, and the message says how to ask for less."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    fields = {"sample_rate": "48000", "channels": "2", "bit_depth": "32"}
    async with app_client(make_settings(max_extract_bytes=1_000_000)) as http:
        response = await http.post(
            "/v1/media/extract-audio", files={"file": ("a.wav", clip("jfk.wav").read_bytes())}, data=fields
        )
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["type"].endswith("OutputTooLarge") and "1000000 bytes" in body["detail"], body
        assert list(scratch.iterdir()) == []
        # A compressed format fits under the same cap.
        response = await http.post(
            "/v1/media/extract-audio",
            files={"file": ("a.wav", clip("jfk.wav").read_bytes())},
            data={"output_format": "opus", "sample_rate": "48000", "channels": "2"},
        )
        assert response.status_code == 200, response.text
        assert len(response.content) < 1_000_000
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("name", ["jfk.mp3", "jfk.wav"])
async def test_truncated_media_is_refused_as_for_tasks(client: httpx.AsyncClient, name: str) -> None:
    """A third of a file decodes a third of what it declares: 422 "truncated", the answer /v1/tasks gives."""
    data = clip(name).read_bytes()
    for path in ("/v1/media/extract-audio", "/v1/tasks"):
        response = await client.post(path, files={"file": (name, data[: len(data) // 3])})
        assert response.status_code == 422, (path, response.text)
        body = response.json()
        assert body["type"].endswith("UnreadableMedia") and "truncated" in body["detail"], (path, body)

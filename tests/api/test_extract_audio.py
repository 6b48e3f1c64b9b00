"""POST /v1/media/extract-audio: the audio of a video, converted, as a download."""

from __future__ import annotations

import io

import av
import httpx
import pytest

from tests.audio import clip


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

"""Audio extraction: any accepted audio or video file to wav, flac, mp3 or opus with the asked sample format."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import av
import av.error

from app.errors import InvalidInput, NoAudioStream, UnreadableMedia
from app.services.media import open_input


class AudioFormat(StrEnum):
    """Output formats of extract-audio."""

    wav = "wav"
    flac = "flac"
    mp3 = "mp3"
    opus = "opus"


@dataclass(frozen=True)
class Codec:
    """How a format is written."""

    container: str
    codec: str
    media_type: str
    rates: tuple[int, ...]
    depths: dict[int, str]  # bit depth -> sample format; empty: lossy, depth does not apply


CODECS = {
    AudioFormat.wav: Codec("wav", "pcm_s16le", "audio/wav", (), {16: "s16", 24: "s32", 32: "s32"}),
    AudioFormat.flac: Codec("flac", "flac", "audio/flac", (), {16: "s16", 24: "s32"}),
    AudioFormat.mp3: Codec(
        "mp3", "libmp3lame", "audio/mpeg", (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000), {}
    ),
    AudioFormat.opus: Codec("ogg", "libopus", "audio/ogg", (8000, 12000, 16000, 24000, 48000), {}),
}
WAV_CODECS = {16: "pcm_s16le", 24: "pcm_s24le", 32: "pcm_s32le"}


def check_request(fmt: AudioFormat, *, sample_rate: int, bit_depth: int) -> None:
    """Refuse combinations the format cannot hold, naming the field."""
    codec = CODECS[fmt]
    if codec.rates and sample_rate not in codec.rates:
        rates = ", ".join(str(r) for r in codec.rates)
        raise InvalidInput(
            f"sample_rate {sample_rate} does not fit {fmt.value}: use one of {rates}.", field="sample_rate"
        )
    if bit_depth not in (16, 24, 32) or (codec.depths and bit_depth not in codec.depths):
        depths = ", ".join(str(d) for d in codec.depths or (16, 24, 32))
        raise InvalidInput(f"bit_depth {bit_depth} does not fit {fmt.value}: use one of {depths}.", field="bit_depth")


def extract_audio(source: Path, fmt: AudioFormat, *, sample_rate: int, channels: int, bit_depth: int) -> Path:
    """Write the first audio stream of `source` to a temporary file in `fmt`; the caller deletes it."""
    check_request(fmt, sample_rate=sample_rate, bit_depth=bit_depth)
    codec = CODECS[fmt]
    output = Path(tempfile.mkstemp(prefix="extract-", suffix=f".{fmt.value}")[1])
    layout = "mono" if channels == 1 else "stereo"
    try:
        with open_input(source) as container:
            if not container.streams.audio:
                raise NoAudioStream("The media file has no audio stream to extract.")
            with av.open(str(output), "w", format=codec.container) as sink:
                name = WAV_CODECS[bit_depth] if fmt is AudioFormat.wav else codec.codec
                stream = sink.add_stream(name, rate=sample_rate, layout=layout)
                assert isinstance(stream, av.AudioStream)
                if fmt is AudioFormat.flac:
                    stream.codec_context.format = codec.depths[bit_depth]
                sample_format = stream.codec_context.format
                assert sample_format is not None
                resampler = av.AudioResampler(format=sample_format.name, layout=layout, rate=sample_rate)
                try:
                    for frame in container.decode(container.streams.audio[0]):
                        for piece in resampler.resample(frame):
                            sink.mux(stream.encode(piece))
                except av.error.FFmpegError as exc:
                    raise UnreadableMedia(
                        f"The media file is damaged and could not be decoded: {exc.strerror}."
                    ) from exc
                for piece in resampler.resample(None):
                    sink.mux(stream.encode(piece))
                sink.mux(stream.encode(None))
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    return output

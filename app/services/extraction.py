"""Audio extraction: any accepted audio or video file to wav, flac, mp3 or opus with the asked sample format."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import av
import av.error

from app.errors import AudioTooLong, InvalidInput, OutputTooLarge, UnreadableMedia
from app.services.media import audio_stream, check_complete, declared_seconds, open_input, temporary_path


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


@dataclass(frozen=True)
class ExtractLimits:
    """What one extraction may produce: the task duration limit and a cap on the written file."""

    max_seconds: float
    max_bytes: int


def extract_audio(
    source: Path, fmt: AudioFormat, *, sample_rate: int, channels: int, bit_depth: int, limits: ExtractLimits
) -> Path:
    """Write the first audio stream of `source` to a temporary file in `fmt`; the caller deletes it."""
    check_request(fmt, sample_rate=sample_rate, bit_depth=bit_depth)
    codec = CODECS[fmt]
    layout = "mono" if channels == 1 else "stereo"
    output = temporary_path(prefix="extract-", suffix=f".{fmt.value}")
    try:
        with open_input(source) as container:
            audio = audio_stream(source, container)
            declared = declared_seconds(source, container, audio)
            if declared is not None:
                _check_seconds(declared, limits)
                if fmt is AudioFormat.wav:  # uncompressed: the size follows from the duration
                    _check_bytes(int(declared * sample_rate * channels * bit_depth / 8), fmt, limits)
            with av.open(str(output), "w", format=codec.container) as sink:
                name = WAV_CODECS[bit_depth] if fmt is AudioFormat.wav else codec.codec
                stream = sink.add_stream(name, rate=sample_rate, layout=layout)
                assert isinstance(stream, av.AudioStream)
                if fmt is AudioFormat.flac:
                    stream.codec_context.format = codec.depths[bit_depth]
                sample_format = stream.codec_context.format
                assert sample_format is not None
                resampler = av.AudioResampler(format=sample_format.name, layout=layout, rate=sample_rate)
                written = _Written(limits, sample_rate, fmt)
                try:
                    for frame in container.decode(audio):
                        for piece in resampler.resample(frame):
                            written.add(piece.samples, sink, stream.encode(piece))
                except av.error.FFmpegError as exc:
                    raise UnreadableMedia(
                        f"The media file is damaged and could not be decoded: {exc.strerror}."
                    ) from exc
                for piece in resampler.resample(None):
                    written.add(piece.samples, sink, stream.encode(piece))
                written.add(0, sink, stream.encode(None))
            check_complete(declared, written.samples / sample_rate)
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    return output


class _Written:
    """Counts what goes into the output, refusing it once it passes the duration limit or the size cap."""

    def __init__(self, limits: ExtractLimits, sample_rate: int, fmt: AudioFormat) -> None:
        self.limits, self.sample_rate, self.fmt = limits, sample_rate, fmt
        self.samples = 0
        self.size = 0

    def add(self, samples: int, sink: av.container.OutputContainer, packets: list[av.Packet[av.AudioStream]]) -> None:
        self.samples += samples
        if self.samples > self.limits.max_seconds * self.sample_rate:
            raise AudioTooLong(f"The audio is longer than this server's limit of {self.limits.max_seconds:.0f} s.")
        for packet in packets:
            self.size += packet.size
            _check_bytes(self.size, self.fmt, self.limits)
            sink.mux(packet)


def _check_seconds(seconds: float, limits: ExtractLimits) -> None:
    if seconds > limits.max_seconds:
        raise AudioTooLong(f"The audio lasts {seconds:.0f} s; this server accepts at most {limits.max_seconds:.0f} s.")


def _check_bytes(size: int, fmt: AudioFormat, limits: ExtractLimits) -> None:
    if size > limits.max_bytes:
        smaller = "a lower sample_rate or one channel"
        if fmt is AudioFormat.wav:
            smaller = "a lower sample_rate, one channel, a smaller bit_depth or flac, mp3 or opus"
        raise OutputTooLarge(
            f"The extracted {fmt.value} would be larger than this server's limit of {limits.max_bytes} bytes: "
            f"ask for {smaller}."
        )

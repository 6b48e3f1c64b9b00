"""Build media files of many kinds from a real clip, with PyAV (no ffmpeg binary needed)."""

from __future__ import annotations

import io
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# container format, extension, audio codec
AUDIO_FORMATS = {
    "mp3": ("mp3", "mp3", "libmp3lame"),
    "wav": ("wav", "wav", "pcm_s16le"),
    "ogg-opus": ("ogg", "opus", "libopus"),
    "flac": ("flac", "flac", "flac"),
    "m4a-aac": ("ipod", "m4a", "aac"),
    "webm": ("webm", "webm", "libopus"),
    "mkv": ("matroska", "mkv", "aac"),
}


def load_pcm(source: Path, rate: int = 16_000) -> np.ndarray:
    """Decode a clip to mono int16 samples."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    pieces = []
    with av.open(str(source)) as container:
        for frame in container.decode(audio=0):
            pieces += [p.to_ndarray().reshape(-1) for p in resampler.resample(frame)]
    return np.concatenate(pieces)


def write_audio(path: Path, samples: np.ndarray, *, container: str, codec: str, rate: int = 16_000) -> Path:
    """Encode int16 mono samples into `container` with `codec`."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=48_000 if codec in ("libopus", "vorbis") else rate, layout="mono")
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=stream.rate)
        step = 1024
        for i in range(0, len(samples), step):
            frame = av.AudioFrame.from_ndarray(samples[i : i + step].reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = rate
            for piece in resampler.resample(frame):
                out.mux(stream.encode(piece))
        for piece in resampler.resample(None):
            out.mux(stream.encode(piece))
        out.mux(stream.encode(None))
    return path


def write_video(path: Path, *, seconds: float, audio: np.ndarray | None, rate: int = 16_000) -> Path:
    """An mp4 with a test-pattern video track and, optionally, AAC audio."""
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("aac", rate=rate, layout="mono") if audio is not None else None
        for i in range(int(seconds * 10)):
            image = np.full((48, 64, 3), (i * 7) % 255, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None and audio is not None:
            resampler = av.AudioResampler(format=sound.codec_context.format.name, layout="mono", rate=rate)
            for i in range(0, len(audio), 1024):
                frame = av.AudioFrame.from_ndarray(audio[i : i + 1024].reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate = rate
                for piece in resampler.resample(frame):
                    out.mux(sound.encode(piece))
            out.mux(sound.encode(None))
    return path


def image_bytes(codec: str) -> bytes:
    """A tiny still image encoded with `codec` (png or mjpeg, i.e. a JPEG file)."""
    context = av.CodecContext.create(codec, "w")
    assert isinstance(context, av.VideoCodecContext)
    pixels = "rgb24" if codec == "png" else "yuvj420p"
    context.width, context.height, context.pix_fmt, context.time_base = 16, 16, pixels, Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), dtype=np.uint8), format="rgb24").reformat(format=pixels)
    return b"".join(bytes(packet) for packet in [*context.encode(frame), *context.encode(None)])


# Files that are plainly not media: each must be refused as 415 "not audio or video".
NOT_MEDIA = {
    "png": ("picture.png", lambda: image_bytes("png")),
    "jpeg": ("photo.jpg", lambda: image_bytes("mjpeg")),
    "pdf": (
        "paper.pdf",
        lambda: b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
    ),
}


def tone_wav(seconds: float = 0.2, *, frequency: float = 440.0, rate: int = 16_000) -> bytes:
    """A short 16-bit mono WAV of a sine tone (vary `frequency` to get distinct files)."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * 32767 * np.sin(2 * np.pi * frequency * t)).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def silent_flac(path: Path, *, seconds: float, rate: int = 8000, declare_length: bool = True) -> Path:
    """A long FLAC of silence, small on disk; without `declare_length` its header says nothing of its duration."""
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=rate, layout="mono")
        step = 4096
        silence = np.zeros((1, step), dtype=np.int16)
        for start in range(0, int(seconds * rate), step):
            frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    if not declare_length:
        data = bytearray(path.read_bytes())
        # STREAMINFO (right after "fLaC" and its 4-byte block header): the low 36 bits of bytes 18-25 count the
        # samples; 0 means "unknown", as a streamed encoder writes it. The MD5 after it stays (unchecked).
        field = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
        data[18:26] = field.to_bytes(8, "big")
        path.write_bytes(bytes(data))
    return path

"""Media intake: stream uploads to disk, probe and decode with PyAV, store 16 kHz mono Opus in chunks."""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import tempfile
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import filetype
import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import MEDIA_CHUNKS, MediaChunk
from app.db.retry import retry_transient
from app.errors import AudioTooLong, EmptyUpload, NoAudioStream, UnreadableMedia, UnsupportedMedia, UploadTooLarge

SAMPLE_RATE = 16_000
CHUNK_BYTES = 1024 * 1024
# Demuxers we open. Anything else (HLS/DASH playlists, concat lists, image sequences...) could make FFmpeg read
# other files or URLs, so it is refused before a byte of it is interpreted.
DEMUXERS = (
    "aac",
    "aiff",
    "amr",
    "asf",
    "au",
    "avi",
    "caf",
    "flac",
    "flv",
    "matroska",
    "webm",
    "mov",
    "mp4",
    "m4a",
    "3gp",
    "mp3",
    "mpeg",
    "mpegts",
    "ogg",
    "wav",
    "w64",
    "wv",
    "ape",
    "mp2",
    "ac3",
    "eac3",
    "dts",
    "tta",
)
SUPPORTED = "send mp3, wav, ogg/opus, flac, m4a/aac, mp4, webm, mkv or similar"
# libopus at its default complexity (10) costs about 0.8 s of CPU per 100 s of speech, stolen from inference on a
# small machine; complexity 3 with 60 ms frames costs 0.15 s at the same size (bench/overhead.py, the closing note).
OPUS_OPTIONS = {"compression_level": "3", "frame_duration": "60"}
# FFmpeg's resampler mixes at most this many channels (SWR_CH_MAX); a file declaring more cannot be decoded.
MAX_CHANNELS = 64
TEXT_SNIFF_BYTES = 4096
# Decoded audio shorter than this share of the declared duration means the file was cut off.
TRUNCATION_RATIO = 0.9


@dataclass(frozen=True)
class DecodedMedia:
    """A media file decoded to 16 kHz mono and re-encoded (FLAC or Opus, in Ogg) for storage."""

    path: Path
    duration: float
    size: int
    container: str
    sha256: str
    """SHA-256 of the decoded 16 kHz mono PCM: the same sound gives the same hash whatever the container."""


async def spool_to_file(chunks: AsyncIterator[bytes], *, limit: int, directory: Path | None = None) -> Path:
    """Write a byte stream to a temporary file, refusing it as soon as it passes `limit` bytes."""
    file = tempfile.NamedTemporaryFile(prefix="upload-", dir=directory, delete=False)  # noqa: SIM115
    path = Path(file.name)
    size = 0
    try:
        with file:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(f"The upload is larger than the limit of {limit} bytes.")
                file.write(chunk)
        if size == 0:
            raise EmptyUpload()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def temporary_path(*, prefix: str, suffix: str, directory: Path | None = None) -> Path:
    """A new, empty temporary file for PyAV to write by name; its descriptor is closed at once (the caller deletes
    the file)."""
    descriptor, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    os.close(descriptor)
    return Path(name)


def decode_for_storage(
    source: Path, *, max_seconds: float, bitrate: int, directory: Path | None = None
) -> DecodedMedia:
    """Decode the first audio stream of `source` to 16 kHz mono in Ogg, lossless FLAC (bitrate 0) or Opus at
    `bitrate`; validate format, length and integrity."""
    if source.stat().st_size == 0:
        raise EmptyUpload()
    output = temporary_path(prefix="audio-", suffix=".ogg", directory=directory)
    try:
        decoded, container_name, digest = _transcode(source, output, max_seconds=max_seconds, bitrate=bitrate)
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    return DecodedMedia(output, decoded, output.stat().st_size, container_name, digest)


def open_input(source: Path) -> av.container.InputContainer:
    """Open a local media file with only whitelisted demuxers and the file protocol; 415/422 if it is not media."""
    kind = filetype.guess(str(source))
    if kind is not None and not kind.mime.startswith(("audio/", "video/")):
        # An image, document or archive: FFmpeg would only say "Invalid argument" about it.
        raise UnsupportedMedia(f"The file is {kind.mime}, not audio or video: {SUPPORTED}.")
    if kind is None and looks_like_text(source):
        # A playlist, concat list or any other text: none of it is media, and FFmpeg would say "Invalid argument".
        raise UnsupportedMedia(f"The file is text, not audio or video: {SUPPORTED}.")
    try:
        return av.open(
            str(source),
            options={"format_whitelist": ",".join(DEMUXERS), "protocol_whitelist": "file"},
            metadata_errors="ignore",
        )
    except (av.error.InvalidDataError, av.error.PermissionError, av.error.DemuxerNotFoundError) as exc:
        if kind is not None:
            raise UnreadableMedia(
                f"The file looks like {kind.mime} but is damaged or truncated and could not be opened."
            ) from exc
        raise UnsupportedMedia(f"The file is not audio or video in a supported format: {SUPPORTED}.") from exc
    except av.error.FFmpegError as exc:
        if kind is None:  # nothing recognised it, and FFmpeg could not open it either
            raise UnsupportedMedia(f"The file is not audio or video in a supported format: {SUPPORTED}.") from exc
        raise UnreadableMedia(
            f"The file looks like {kind.mime} but could not be opened ({exc.strerror}): it may be damaged."
        ) from exc


def looks_like_text(source: Path) -> bool:
    """Whether the file starts with printable UTF-8 text (no media container does)."""
    with source.open("rb") as file:
        head = file.read(TEXT_SNIFF_BYTES)
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a cut-off last character is fine
    except UnicodeDecodeError:
        return False
    return bool(text) and all(char.isprintable() or char in "\t\n\r\f" for char in text)


def audio_stream(source: Path, container: av.container.InputContainer) -> av.AudioStream:
    """The first audio stream, refused (422) when missing or declaring a channel count nothing can decode."""
    if not container.streams.audio:
        raise NoAudioStream("The media file has no audio stream: send a file with sound.")
    stream = container.streams.audio[0]
    channels = stream.codec_context.channels
    if not 1 <= channels <= MAX_CHANNELS:
        declared = _wav_channels(source) if container.format.name == "wav" else None
        count = f"{declared} channels" if declared else "no valid channel layout"
        raise UnreadableMedia(
            f"The audio stream declares {count}; at most {MAX_CHANNELS} can be decoded. The file is damaged or "
            "unusual: re-export it as mono or stereo."
        )
    return stream


def _wav_channels(source: Path) -> int | None:
    """The channel count a WAV header declares (FFmpeg reports 0 for one it cannot use)."""
    try:
        with wave.open(str(source), "rb") as header:
            return header.getnchannels()
    except (wave.Error, EOFError):
        return None


def _transcode(source: Path, output: Path, *, max_seconds: float, bitrate: int) -> tuple[float, str, str]:
    """Decode, resample and encode; returns seconds decoded, the container name and a SHA-256 of the PCM."""
    with open_input(source) as container:
        stream = audio_stream(source, container)
        declared = declared_seconds(source, container, stream)
        if declared is not None and declared > max_seconds:
            raise AudioTooLong(f"The audio lasts {declared:.0f} s; this server accepts at most {max_seconds:.0f} s.")
        max_samples = int(max_seconds * SAMPLE_RATE)
        samples = 0
        pcm_digest = hashlib.sha256()
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        with av.open(str(output), "w", format="ogg") as sink:
            if bitrate:
                encoder = sink.add_stream("libopus", rate=SAMPLE_RATE, layout="mono", options=OPUS_OPTIONS)
                encoder.bit_rate = bitrate
            else:
                encoder = sink.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
            try:
                for frame in container.decode(stream):
                    for piece in resampler.resample(frame):
                        samples += piece.samples
                        pcm_digest.update(piece.to_ndarray().tobytes())
                        if samples > max_samples:
                            raise AudioTooLong(f"The audio is longer than this server's limit of {max_seconds:.0f} s.")
                        sink.mux(encoder.encode(piece))
            except av.error.FFmpegError as exc:
                raise UnreadableMedia(f"The media file is damaged and could not be decoded: {exc.strerror}.") from exc
            for piece in resampler.resample(None):
                samples += piece.samples
                pcm_digest.update(piece.to_ndarray().tobytes())
                sink.mux(encoder.encode(piece))
            sink.mux(encoder.encode(None))
        container_name = container.format.name
    seconds = samples / SAMPLE_RATE
    check_complete(declared, seconds)
    return seconds, container_name, pcm_digest.hexdigest()


def check_complete(declared: float | None, seconds: float) -> None:
    """422 when nothing decoded, or clearly less than the file declares (it was cut off)."""
    if seconds <= 0:
        raise UnreadableMedia("The media file holds no decodable audio.")
    if declared is not None and declared > 1.0 and seconds < declared * TRUNCATION_RATIO:
        raise UnreadableMedia(
            f"The media file is truncated: it declares {declared:.1f} s of audio but only {seconds:.1f} s decode."
        )


def declared_seconds(source: Path, container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    """The duration the file claims. FFmpeg sizes a WAV by its file length, so read the RIFF header for that."""
    if container.format.name == "wav":
        try:
            with wave.open(str(source), "rb") as header:
                return header.getnframes() / header.getframerate()
        except (wave.Error, EOFError, ZeroDivisionError):
            pass  # not plain PCM: fall back to what FFmpeg says
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def decode_pcm(data: bytes) -> np.ndarray:
    """Decode stored audio (Ogg FLAC or Opus) to float32 samples at 16 kHz, as faster-whisper takes them."""
    pieces: list[np.ndarray] = []
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    try:
        with av.open(io.BytesIO(data), "r", format="ogg") as container:
            for frame in container.decode(audio=0):
                pieces.extend(piece.to_ndarray().reshape(-1) for piece in resampler.resample(frame))
    except (av.error.FFmpegError, EOFError) as exc:  # PyAV says "End of file: '<none>'" for a missing file
        raise UnreadableMedia("The task's stored audio could not be read: create the task again.") from exc
    pieces.extend(piece.to_ndarray().reshape(-1) for piece in resampler.resample(None))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


async def store_media(*, session: AsyncSession, task_id: str, path: Path) -> None:
    """Write the encoded audio into `media_chunks` rows (part of the caller's transaction)."""
    with path.open("rb") as file:
        seq = 0
        while chunk := file.read(CHUNK_BYTES):
            session.add(MediaChunk(task_id=task_id, seq=seq, data=chunk))
            seq += 1
            await session.flush()


@retry_transient
async def load_media(*, session: AsyncSession, task_id: str) -> bytes:
    """Read a task's encoded audio back from its chunks (in its own transaction, so it can be retried)."""
    async with session.begin():
        rows = await session.scalars(
            select(MediaChunk.data).where(MediaChunk.task_id == task_id).order_by(MediaChunk.seq)
        )
        return b"".join(rows)


async def delete_media(*, session: AsyncSession, task_id: str) -> None:
    """Remove a task's stored audio."""
    await session.execute(delete(MEDIA_CHUNKS).where(MEDIA_CHUNKS.c.task_id == task_id))


@retry_transient
async def has_media(*, session: AsyncSession, task_id: str) -> bool:
    """Whether audio is stored for the task."""
    async with session.begin():
        found = await session.scalar(select(MediaChunk.seq).where(MediaChunk.task_id == task_id).limit(1))
    return found is not None

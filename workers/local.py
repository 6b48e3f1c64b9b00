"""`whisper-service transcribe`: local files through the same engine, with a progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

import av.error
import numpy as np
from faster_whisper import decode_audio
from tqdm import tqdm

from app.errors import AppError, UnreadableMedia
from app.schemas.tasks import DecodeOptions, TaskType
from app.schemas.transcript import Segment
from app.services.media import SAMPLE_RATE, audio_stream, open_input
from app.services.subtitles import SubtitleFormat, render
from app.settings import Settings
from workers.engine import TranscriptionRequest
from workers.main import build_engine


def transcribe_files(
    settings: Settings,
    files: list[Path],
    *,
    model: str,
    language: str | None,
    task_type: str,
    formats: list[str],
    output_dir: Path | None,
    word_timestamps: bool,
) -> int:
    """Transcribe each file and write one output per format; returns a process exit code."""
    try:
        wanted = [SubtitleFormat(f.strip()) for f in formats]
    except ValueError:
        print(f"unknown format in {formats}; choose from {[f.value for f in SubtitleFormat]}", file=sys.stderr)
        return 2
    engine = build_engine(settings)
    request = TranscriptionRequest(
        task_id=None,
        model=model,
        task_type=TaskType(task_type),
        language=language,
        options=DecodeOptions(word_timestamps=word_timestamps),
    )
    failures = 0
    for path in files:
        try:
            audio = _decode(path)
        except AppError as exc:
            print(f"{path}: cannot decode: {exc.detail}", file=sys.stderr)
            failures += 1
            continue
        total = round(len(audio) / SAMPLE_RATE, 1)
        with tqdm(total=total, unit="s", desc=path.name, file=sys.stderr) as bar:
            # The position is set, not added to: sums of tenths drift (53.300000000000004/53.3) past the total.
            def advance(segment: Segment, bar: tqdm[float] = bar, total: float = total) -> None:
                bar.n = max(bar.n, min(round(segment.end, 1), total))
                bar.refresh()

            transcript = engine.transcribe(audio, request, on_segment=advance, should_stop=lambda: False)
            bar.n = total
        target_dir = output_dir or path.parent
        target_dir.mkdir(parents=True, exist_ok=True)
        for fmt in wanted:
            out = target_dir / f"{path.stem}.{fmt.value}"
            out.write_text(render(transcript, fmt), encoding="utf-8")
            print(out, file=sys.stderr)
    return 1 if failures else 0


def _decode(path: Path) -> np.ndarray:
    """16 kHz mono samples of `path`, after the checks uploads get (so text or an image says "not audio or video",
    not faster-whisper's "tuple index out of range"); our own error for anything unreadable."""
    try:
        with open_input(path) as container:
            audio_stream(path, container)
        samples: np.ndarray = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except (OSError, av.error.FFmpegError) as exc:  # a missing or unreadable file, or FFmpeg failing part-way
        raise UnreadableMedia(f"The file could not be read: {exc}.") from exc
    return samples

"""`whisper-service transcribe`: local files through the same engine, with a progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

from faster_whisper import decode_audio
from tqdm import tqdm

from app.schemas.tasks import DecodeOptions, TaskType
from app.schemas.transcript import Segment
from app.services.media import SAMPLE_RATE
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
            audio = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
        except Exception as exc:
            print(f"{path}: cannot decode: {exc}", file=sys.stderr)
            failures += 1
            continue
        total = round(len(audio) / SAMPLE_RATE, 1)
        with tqdm(total=total, unit="s", desc=path.name, file=sys.stderr) as bar:

            def advance(segment: Segment, bar: tqdm[float] = bar, total: float = total) -> None:
                bar.update(round(min(segment.end, total) - bar.n, 1))

            transcript = engine.transcribe(audio, request, on_segment=advance, should_stop=lambda: False)
            bar.update(round(total - bar.n, 1))
        target_dir = output_dir or path.parent
        target_dir.mkdir(parents=True, exist_ok=True)
        for fmt in wanted:
            out = target_dir / f"{path.stem}.{fmt.value}"
            out.write_text(render(transcript, fmt), encoding="utf-8")
            print(out, file=sys.stderr)
    return 1 if failures else 0

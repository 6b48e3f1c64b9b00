"""Transcripts in the shapes OpenAI's audio API returns."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from app.schemas.transcript import Transcript
from app.services.subtitles import SubtitleFormat, render


class ResponseFormat(StrEnum):
    """OpenAI's `response_format` values."""

    json = "json"
    text = "text"
    srt = "srt"
    verbose_json = "verbose_json"
    vtt = "vtt"


MEDIA_TYPES = {
    ResponseFormat.json: "application/json",
    ResponseFormat.verbose_json: "application/json",
    ResponseFormat.text: "text/plain; charset=utf-8",
    ResponseFormat.srt: "text/plain; charset=utf-8",
    ResponseFormat.vtt: "text/plain; charset=utf-8",
}


def verbose_json(transcript: Transcript, *, task: str, segments: bool, words: bool) -> dict[str, Any]:
    """OpenAI's verbose_json: task, language, duration, text, and segments and/or words as asked."""
    body: dict[str, Any] = {
        "task": task,
        "language": transcript.language or "",
        "duration": transcript.duration,
        "text": transcript.text,
    }
    if segments:
        body["segments"] = [
            {
                "id": s.id,
                "seek": s.seek or 0,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": s.tokens or [],
                "temperature": s.temperature or 0.0,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio or 0.0,
                "no_speech_prob": s.no_speech_prob,
            }
            for s in transcript.segments
        ]
    if words:
        body["words"] = [
            {"word": w.word.strip(), "start": w.start, "end": w.end} for s in transcript.segments for w in s.words or []
        ]
    return body


def json_body(transcript: Transcript, *, task: str, model: str, seconds: float) -> dict[str, Any]:
    """`json`: OpenAI's `text`, and the fields Whisper Local Server adds (its clients read `language` and `segments`):
    the language code, `duration` (the seconds this request waited, as that server measures it), the segments, the
    model that ran and the task."""
    return {
        "text": transcript.text,
        "language": transcript.language,
        "duration": round(seconds, 3),
        "segments": verbose_json(transcript, task=task, segments=True, words=False)["segments"],
        "model": model,
        "task": task,
    }


def render_text(transcript: Transcript, fmt: ResponseFormat) -> str:
    """text, srt or vtt bodies."""
    if fmt is ResponseFormat.text:
        return transcript.text + "\n"
    return render(transcript, SubtitleFormat(fmt.value))

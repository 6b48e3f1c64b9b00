"""Render a transcript as SRT, WebVTT, plain text, TSV or JSON."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from app.schemas.transcript import Transcript


class SubtitleFormat(StrEnum):
    """Export formats."""

    srt = "srt"
    vtt = "vtt"
    txt = "txt"
    tsv = "tsv"
    json = "json"


MEDIA_TYPES = {
    SubtitleFormat.srt: "application/x-subrip",
    SubtitleFormat.vtt: "text/vtt",
    SubtitleFormat.txt: "text/plain",
    SubtitleFormat.tsv: "text/tab-separated-values",
    SubtitleFormat.json: "application/json",
}


def timestamp(seconds: float, *, decimal: str) -> str:
    """`HH:MM:SS,mmm` (SRT, decimal=",") or `HH:MM:SS.mmm` (WebVTT)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def _cues(transcript: Transcript) -> list[tuple[float, float, str]]:
    """Segments as (start, end, text), clipped to the audio and to each other so cues never overlap."""
    cues: list[tuple[float, float, str]] = []
    previous_end = 0.0
    for segment in transcript.segments:
        text = " ".join(segment.text.split())  # a blank line inside a cue would end it early
        if not text:
            continue
        start = min(max(segment.start, previous_end), transcript.duration)
        end = min(max(segment.end, start), transcript.duration)
        cues.append((start, end, text))
        previous_end = end
    return cues


def to_srt(transcript: Transcript) -> str:
    """SubRip: numbered cues, comma decimal separator."""
    blocks = [
        f"{i}\n{timestamp(start, decimal=',')} --> {timestamp(end, decimal=',')}\n{text}\n"
        for i, (start, end, text) in enumerate(_cues(transcript), start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    """WebVTT: header, dot decimal separator."""
    blocks = [
        f"{timestamp(start, decimal='.')} --> {timestamp(end, decimal='.')}\n{text}\n"
        for start, end, text in _cues(transcript)
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def to_txt(transcript: Transcript) -> str:
    """One segment a line."""
    return "".join(f"{text}\n" for _, _, text in _cues(transcript))


def to_tsv(transcript: Transcript) -> str:
    """start, end (integer milliseconds) and text, tab-separated, as Whisper's CLI writes it."""
    rows = [f"{round(start * 1000)}\t{round(end * 1000)}\t{text}" for start, end, text in _cues(transcript)]
    return "start\tend\ttext\n" + "".join(f"{row}\n" for row in rows)


def to_json(transcript: Transcript) -> str:
    """The whole transcript as JSON."""
    return transcript.model_dump_json(indent=2)


RENDERERS: dict[SubtitleFormat, Callable[[Transcript], str]] = {
    SubtitleFormat.srt: to_srt,
    SubtitleFormat.vtt: to_vtt,
    SubtitleFormat.txt: to_txt,
    SubtitleFormat.tsv: to_tsv,
    SubtitleFormat.json: to_json,
}


def render(transcript: Transcript, fmt: SubtitleFormat) -> str:
    """Render `transcript` in `fmt`."""
    return RENDERERS[fmt](transcript)

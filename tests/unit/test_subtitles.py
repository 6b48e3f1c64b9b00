"""Subtitle rendering: exact output for a known transcript, and cue timing rules."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from app.schemas.subtitles import SubtitleLayout
from app.schemas.transcript import Segment, Transcript, Word
from app.services.subtitles import CueLayout, SubtitleFormat, build_cues, render, standard_layout, timestamp


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


def word(start: float, end: float, text: str) -> Word:
    return Word(start=start, end=end, word=text, probability=0.9)


WORDS = Transcript(
    text="And so my fellow Americans, ask not what your country can do",
    language="en",
    language_probability=0.98,
    duration=6.0,
    segments=[
        seg(0, 0.0, 3.6, " And so my fellow Americans, ask not").model_copy(
            update={
                "words": [
                    word(0.0, 0.3, " And"),
                    word(0.3, 0.6, " so"),
                    word(0.6, 0.9, " my"),
                    word(0.9, 1.4, " fellow"),
                    word(1.4, 2.2, " Americans,"),
                    word(2.6, 3.0, " ask"),
                    word(3.0, 3.5, " not"),
                ]
            }
        ),
        seg(1, 3.6, 6.4, " what your country can do").model_copy(  # runs past the audio
            update={
                "speaker": "SPEAKER_01",
                "words": [
                    word(3.6, 3.9, " what"),
                    word(3.9, 4.2, " your"),
                    word(4.2, 4.9, " country"),
                    word(5.0, 5.3, " can"),
                    word(5.3, 6.4, " do"),
                ],
            },
        ),
    ],
)


def test_srt_with_line_width_and_count() -> None:
    layout = CueLayout(max_line_width=16, max_line_count=2)
    assert render(WORDS, SubtitleFormat.srt, layout) == (
        "1\n00:00:00,000 --> 00:00:02,200\nAnd so my fellow\nAmericans,\n\n"  # balanced: no "not" left alone
        "2\n00:00:02,600 --> 00:00:03,500\nask not\n\n"
        "3\n00:00:03,600 --> 00:00:06,000\n[SPEAKER_01] what your\ncountry can do\n"
    )


def test_vtt_karaoke_with_words_per_cue() -> None:
    layout = CueLayout(max_words_per_cue=3, highlight_words=True)
    assert render(WORDS, SubtitleFormat.vtt, layout) == (
        "WEBVTT\n\nSTYLE\n::cue(:future) { color: #9a9a9a; }\n\n"
        "00:00:00.000 --> 00:00:00.900\nAnd <00:00:00.300>so <00:00:00.600>my\n\n"
        "00:00:00.900 --> 00:00:02.200\nfellow <00:00:01.400>Americans,\n\n"
        "00:00:02.600 --> 00:00:03.500\nask <00:00:03.000>not\n\n"
        "00:00:03.600 --> 00:00:04.200\n<v SPEAKER_01>what <00:00:03.900>your\n\n"
        "00:00:04.200 --> 00:00:06.000\n<v SPEAKER_01>country <00:00:05.000>can <00:00:05.300>do\n"
    )


def test_srt_karaoke_underlines_each_word_in_turn() -> None:
    srt = render(WORDS, SubtitleFormat.srt, CueLayout(max_words_per_cue=3, highlight_words=True))
    assert srt.startswith(
        "1\n00:00:00,000 --> 00:00:00,300\n<u>And</u> so my\n\n"
        "2\n00:00:00,300 --> 00:00:00,600\nAnd <u>so</u> my\n\n"
        "3\n00:00:00,600 --> 00:00:00,900\nAnd so <u>my</u>\n\n"
        "4\n00:00:00,900 --> 00:00:01,400\n<u>fellow</u> Americans,\n\n"
    )
    assert srt.endswith("12\n00:00:05,300 --> 00:00:06,000\n[SPEAKER_01] country can <u>do</u>\n")


def test_lrc_with_cue_duration_and_enhanced_words() -> None:
    assert render(WORDS, SubtitleFormat.lrc, CueLayout(max_cue_duration=1.5)) == (
        "[00:00.00]And so my fellow\n[00:01.40]Americans,\n[00:02.20]\n[00:02.60]ask not\n[00:03.50]\n"
        "[00:03.60][SPEAKER_01] what your country\n[00:04.90]\n[00:05.00][SPEAKER_01] can do\n[00:06.00]\n"
    )
    enhanced = render(WORDS, SubtitleFormat.lrc, CueLayout(max_words_per_cue=3, highlight_words=True))
    assert enhanced.startswith("[00:00.00]<00:00.00>And <00:00.30>so <00:00.60>my\n")


def test_txt_and_tsv_show_speakers() -> None:
    assert render(WORDS, SubtitleFormat.txt) == (
        "And so my fellow Americans, ask not\n[SPEAKER_01] what your country can do\n"
    )
    assert render(WORDS, SubtitleFormat.tsv).splitlines() == [
        "start\tend\ttext\tspeaker",
        "0\t3600\tAnd so my fellow Americans, ask not\t",
        "3600\t6000\twhat your country can do\tSPEAKER_01",
    ]


def test_segments_without_words_are_cut_by_length_and_cjk_by_character() -> None:
    chinese = Transcript(
        text="",
        language="zh",
        language_probability=1.0,
        duration=4.0,
        segments=[seg(0, 0.0, 4.0, "我们今天讨论一下项目的进度安排")],
    )
    cues = build_cues(chinese, CueLayout(max_line_width=5, max_line_count=1))
    assert [cue.text() for cue in cues] == ["我们今天讨", "论一下项目", "的进度安排"]
    assert [(round(c.start, 2), round(c.end, 2)) for c in cues] == [(0.0, 1.33), (1.33, 2.67), (2.67, 4.0)]


JFK_WORDS = [
    (0.0, 0.5, " And"), (0.5, 0.8, " so"), (0.8, 1.2, " my"), (1.2, 1.6, " fellow"), (1.6, 2.1, " Americans,"),
    (3.2, 3.8, " ask"), (3.8, 4.2, " not"), (4.2, 5.2, " what"), (5.5, 5.8, " your"), (5.8, 6.2, " country"),
    (6.2, 6.6, " can"), (6.6, 6.8, " do"), (6.8, 7.1, " for"), (7.1, 7.3, " you."), (7.6, 8.5, " Ask"),
    (8.5, 8.8, " what"), (8.8, 9.0, " you"), (9.0, 9.3, " can"), (9.3, 9.6, " do"), (9.6, 9.8, " for"),
    (9.8, 9.9, " your"), (9.9, 10.4, " country."),
]  # fmt: skip
LONG = Transcript(
    text="And so my fellow Americans, ask not what your country can do for you. Ask what you can do for your country.",
    language="en",
    language_probability=0.98,
    duration=11.0,
    segments=[
        seg(0, 0.0, 10.4, "".join(w for _, _, w in JFK_WORDS)).model_copy(
            update={"words": [word(s, e, w) for s, e, w in JFK_WORDS]}
        )
    ],
)


def test_default_srt_and_vtt_cues_have_two_lines_of_42_characters_and_last_7_seconds() -> None:
    # Two cues (the fewest the 7 s limit allows), as even as they can be (a cut after "you." would last 7.3 s).
    assert render(LONG, SubtitleFormat.srt) == (
        "1\n00:00:00,000 --> 00:00:06,200\nAnd so my fellow Americans, ask not what\nyour country\n\n"
        "2\n00:00:06,200 --> 00:00:10,400\ncan do for you. Ask what you can do for\nyour country.\n"
    )
    assert render(LONG, SubtitleFormat.vtt) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:06.200\nAnd so my fellow Americans, ask not what\nyour country\n\n"
        "00:00:06.200 --> 00:00:10.400\ncan do for you. Ask what you can do for\nyour country.\n"
    )
    # Without word timings the text is spread by length; karaoke keeps the default sizes.
    no_words = LONG.model_copy(update={"segments": [LONG.segments[0].model_copy(update={"words": None})]})
    assert render(no_words, SubtitleFormat.srt) == (
        "1\n00:00:00,000 --> 00:00:05,321\nAnd so my fellow Americans, ask not what\nyour country\n\n"
        "2\n00:00:05,321 --> 00:00:10,400\ncan do for you. Ask what you can do for\nyour country.\n"
    )
    karaoke = render(LONG, SubtitleFormat.vtt, CueLayout(highlight_words=True))
    assert "00:00:06.200 --> 00:00:10.400\ncan <00:00:06.600>do <00:00:06.800>for <00:00:07.100>you." in karaoke


def test_segment_cues_and_other_formats_keep_one_cue_per_segment() -> None:
    sentence = (
        "And so my fellow Americans, ask not what your country can do for you. Ask what you can do for your country."
    )
    assert (
        render(LONG, SubtitleFormat.srt, CueLayout(segment_cues=True))
        == f"1\n00:00:00,000 --> 00:00:10,400\n{sentence}\n"
    )
    assert render(LONG, SubtitleFormat.vtt, CueLayout(segment_cues=True)).endswith(f"00:00:10.400\n{sentence}\n")
    assert render(LONG, SubtitleFormat.txt) == f"{sentence}\n"
    assert render(LONG, SubtitleFormat.tsv) == f"start\tend\ttext\n0\t10400\t{sentence}\n"
    assert render(LONG, SubtitleFormat.lrc) == f"[00:00.00]{sentence}\n[00:10.40]\n"
    # The request's own sizes replace the default ones; a size it leaves out has no limit.
    assert render(LONG, SubtitleFormat.srt, CueLayout(max_line_width=60)) == (
        "1\n00:00:00,000 --> 00:00:10,400\nAnd so my fellow Americans, ask not what your country can do\n"
        "for you. Ask what you can do for your country.\n"
    )


def test_default_cues_of_chinese_japanese_and_korean_have_16_characters_a_line() -> None:
    text = "今天天气很好，我们去公园散步吧。你想一起来吗？我们可以带上孩子们一起去玩。"
    chinese = Transcript(
        text=text, language="zh", language_probability=1.0, duration=9.0, segments=[seg(0, 0, 9, text)]
    )
    assert render(chinese, SubtitleFormat.srt) == (
        "1\n00:00:00,000 --> 00:00:03,892\n今天天气很好，我们去公园散步吧。\n\n"  # a sentence to itself
        "2\n00:00:03,892 --> 00:00:09,000\n你想一起来吗？我们可以带上孩子们\n一起去玩。\n"
    )
    # By the text, not the language: a translation from Chinese is English, laid out 42 characters wide.
    translated = LONG.model_copy(update={"language": "zh"})
    assert render(translated, SubtitleFormat.srt) == render(LONG, SubtitleFormat.srt)


def test_segment_cues_cannot_be_combined_with_sizes() -> None:
    with pytest.raises(ValidationError) as caught:
        SubtitleLayout.model_validate({"max_line_width": 42, "max_cue_duration": 5, "segment_cues": True})
    assert [e["loc"] for e in caught.value.errors()] == [("segment_cues",)]
    assert "max_line_width, max_cue_duration" in caught.value.errors()[0]["msg"]
    layout = SubtitleLayout.model_validate({"segment_cues": True, "highlight_words": True}).layout()
    assert layout == CueLayout(highlight_words=True, segment_cues=True)


word_text = st.text(alphabet=st.sampled_from("abcdefghij 中文,."), min_size=1, max_size=30)
raw_words = st.lists(
    st.tuples(st.floats(0, 5, allow_nan=False), st.floats(0, 3, allow_nan=False), word_text), max_size=25
)
layouts = st.builds(
    CueLayout,
    max_line_width=st.none() | st.integers(4, 50),
    max_line_count=st.none() | st.integers(1, 4),
    max_words_per_cue=st.none() | st.integers(1, 10),
    max_cue_duration=st.none() | st.floats(0.2, 10, allow_nan=False),
    highlight_words=st.booleans(),
)


@given(st.lists(raw_words, min_size=1, max_size=5), layouts, st.floats(1, 60, allow_nan=False), st.booleans())
def test_generated_cues_respect_every_limit(
    segment_words: list[list[tuple[float, float, str]]], layout: CueLayout, duration: float, with_words: bool
) -> None:
    segments, at = [], 0.0
    for i, items in enumerate(segment_words):
        words, start = [], at
        for gap, length, text in items:
            words.append(word(at + gap, at + gap + length, " " + text))
            at += gap + length
        text = "".join(w.word for w in words) or " x"
        segments.append(
            seg(i, start, max(at, start + 0.1), text).model_copy(
                update={"words": words if with_words else None, "speaker": f"SPEAKER_0{i % 2}"}
            )
        )
    transcript = Transcript(text="", language="en", language_probability=1.0, duration=duration, segments=segments)
    cues = build_cues(transcript, layout)
    previous_end = 0.0
    for cue in cues:
        assert previous_end <= cue.start <= cue.end <= duration
        if layout.max_cue_duration is not None:
            assert cue.end - cue.start <= layout.max_cue_duration + 1e-9
        if layout.max_words_per_cue is not None:
            assert len(cue.tokens) <= layout.max_words_per_cue
        if layout.max_line_count is not None:
            assert len(cue.lines) <= layout.max_line_count
        if layout.max_line_width is not None:
            assert all(len(line) <= layout.max_line_width for line in cue.text().split("\n"))
        previous_end = cue.end
    # Rendered SRT (per-word cues when highlighting) keeps the same rules, and the standard ones without sizes.
    srt_end = 0.0
    standard = standard_layout(transcript, layout)
    for block in filter(None, render(transcript, SubtitleFormat.srt, layout).split("\n\n")):
        start_s, end_s = block.split("\n")[1].replace(",", ".").split(" --> ")
        assert srt_end <= _seconds(start_s) <= _seconds(end_s) <= round(duration, 3) + 0.0005
        srt_end = _seconds(end_s)
        if not layout.sized and not layout.highlight_words:
            lines = re.sub(r"^\[SPEAKER_0\d\] ", "", "\n".join(block.split("\n")[2:])).split("\n")
            assert len(lines) <= 2 and all(len(line) <= (standard.max_line_width or 0) for line in lines)
            assert _seconds(end_s) - _seconds(start_s) <= 7.0005


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_cue_duration": 1e-300}, "max_cue_duration"),
        ({"max_cue_duration": 0.4}, "max_cue_duration"),
    ],
)
def test_layout_options_below_their_minimum_name_the_field(options: dict[str, float], field: str) -> None:
    """A near-zero cue duration would give 0 ms cues (review finding 11)."""
    with pytest.raises(ValidationError) as caught:
        SubtitleLayout.model_validate(options)
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]
    SubtitleLayout.model_validate({"max_cue_duration": 0.5, "max_line_width": 10})


def test_no_word_is_left_alone_in_a_cue_of_its_own() -> None:
    """Cues filled one after another left "you," alone for half a second after a full cue (review finding)."""
    words = [
        (0.0, 0.4, " And"), (0.4, 0.7, " so"), (0.7, 1.0, " my"), (1.0, 1.4, " fellow"), (1.4, 2.0, " Americans,"),
        (2.5, 2.9, " ask"), (2.9, 3.2, " not"), (3.2, 3.6, " what"), (3.6, 3.9, " your"), (3.9, 4.4, " country"),
        (4.4, 4.8, " can"), (4.8, 5.0, " do"), (5.0, 5.3, " for"), (6.9, 7.4, " you,"),
    ]  # fmt: skip
    text = "".join(w for _, _, w in words)
    segment = seg(0, 0.0, 7.4, text).model_copy(update={"words": [word(s, e, w) for s, e, w in words]})
    transcript = Transcript(text=text, language="en", language_probability=1.0, duration=7.5, segments=[segment])
    cues = build_cues(transcript, standard_layout(transcript))
    assert len(cues) == 2 and all(len(cue.text().split()) >= 4 for cue in cues), [cue.text() for cue in cues]

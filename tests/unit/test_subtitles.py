"""Subtitle rendering: exact output for a known transcript, and cue timing rules."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from app.schemas.transcript import Segment, Transcript, Word
from app.services.subtitles import CueLayout, SubtitleFormat, build_cues, render, timestamp


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
        "1\n00:00:00,000 --> 00:00:03,000\nAnd so my fellow\nAmericans, ask\n\n"
        "2\n00:00:03,000 --> 00:00:03,500\nnot\n\n"
        "3\n00:00:03,600 --> 00:00:06,000\n[SPEAKER_01] what your\ncountry can do\n"
    )


def test_vtt_karaoke_with_words_per_cue() -> None:
    layout = CueLayout(max_words_per_cue=3, highlight_words=True)
    assert render(WORDS, SubtitleFormat.vtt, layout) == (
        "WEBVTT\n\nSTYLE\n::cue(:future) { color: #9a9a9a; }\n\n"
        "00:00:00.000 --> 00:00:00.900\nAnd <00:00:00.300>so <00:00:00.600>my\n\n"
        "00:00:00.900 --> 00:00:03.000\nfellow <00:00:01.400>Americans, <00:00:02.600>ask\n\n"
        "00:00:03.000 --> 00:00:03.500\nnot\n\n"
        "00:00:03.600 --> 00:00:04.900\n<v SPEAKER_01>what <00:00:03.900>your <00:00:04.200>country\n\n"
        "00:00:05.000 --> 00:00:06.000\n<v SPEAKER_01>can <00:00:05.300>do\n"
    )


def test_srt_karaoke_underlines_each_word_in_turn() -> None:
    srt = render(WORDS, SubtitleFormat.srt, CueLayout(max_words_per_cue=3, highlight_words=True))
    assert srt.startswith(
        "1\n00:00:00,000 --> 00:00:00,300\n<u>And</u> so my\n\n"
        "2\n00:00:00,300 --> 00:00:00,600\nAnd <u>so</u> my\n\n"
        "3\n00:00:00,600 --> 00:00:00,900\nAnd so <u>my</u>\n\n"
        "4\n00:00:00,900 --> 00:00:01,400\n<u>fellow</u> Americans, ask\n\n"
    )
    assert srt.endswith("12\n00:00:05,300 --> 00:00:06,000\n[SPEAKER_01] can <u>do</u>\n")


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
    # Rendered SRT (per-word cues when highlighting) keeps the same rules.
    srt_end = 0.0
    for block in filter(None, render(transcript, SubtitleFormat.srt, layout).split("\n\n")):
        start_s, end_s = block.split("\n")[1].replace(",", ".").split(" --> ")
        assert srt_end <= _seconds(start_s) <= _seconds(end_s) <= round(duration, 3) + 0.0005
        srt_end = _seconds(end_s)

"""Chinese script conversion with OpenCC, on text, segments and words."""

from __future__ import annotations

import pytest

from app.schemas.tasks import ChineseScript
from app.schemas.transcript import Segment, Transcript, Word
from app.services.admission import chinese_script
from app.services.chinese import convert_text, convert_transcript

SIMPLIFIED = "我们今天讨论一下软件和鼠标的进度安排，这个信息很重要。"
TRADITIONAL = "我們今天討論一下軟件和鼠標的進度安排，這個信息很重要。"
TAIWAN = "我們今天討論一下軟體和滑鼠的進度安排，這個資訊很重要。"


def test_known_strings_convert_both_ways() -> None:
    assert convert_text(SIMPLIFIED, ChineseScript.traditional) == TRADITIONAL
    assert convert_text(SIMPLIFIED, ChineseScript.taiwan) == TAIWAN  # Taiwan characters and phrasing
    assert convert_text(TRADITIONAL, ChineseScript.simplified) == SIMPLIFIED
    assert convert_text("這個軟件很好用", ChineseScript.hongkong) == "這個軟件很好用"
    assert convert_text("这个软件很好用", ChineseScript.hongkong) == "這個軟件很好用"


def chinese_transcript(language: str) -> Transcript:
    words = [Word(start=i * 0.2, end=i * 0.2 + 0.2, word=ch, probability=0.9) for i, ch in enumerate("鼠标和软件")]
    segment = Segment(id=0, start=0.0, end=1.0, text="鼠标和软件", avg_logprob=-0.1, no_speech_prob=0.0, words=words)
    return Transcript(text="鼠标和软件", language=language, language_probability=0.9, duration=1.0, segments=[segment])


def test_text_segments_and_words_follow_the_script() -> None:
    converted = convert_transcript(chinese_transcript("zh"), ChineseScript.taiwan)
    assert converted.text == "滑鼠和軟體" and converted.segments[0].text == "滑鼠和軟體"
    # 鼠标 -> 滑鼠 spans two words: the words are converted together and cut back at the same places.
    assert [w.word for w in converted.segments[0].words or []] == ["滑", "鼠", "和", "軟", "體"]
    assert [round(w.start, 1) for w in converted.segments[0].words or []] == [0.0, 0.2, 0.4, 0.6, 0.8]


def test_other_languages_are_left_alone() -> None:
    japanese = chinese_transcript("ja")
    assert convert_transcript(japanese, ChineseScript.traditional) == japanese


def test_none_leaves_everything_as_the_model_wrote_it() -> None:
    transcript = chinese_transcript("zh")
    assert convert_text(SIMPLIFIED, ChineseScript.none) == SIMPLIFIED
    assert convert_transcript(transcript, ChineseScript.none) == transcript


S, T, TW, HK, NONE = "simplified", "traditional", "taiwan", "hongkong", "none"


@pytest.mark.parametrize(
    ("requested", "default", "traditional_route", "expected"),
    [
        (None, NONE, False, None),  # nothing asked, nothing configured: as the model writes
        (None, S, False, S),  # the server default
        (None, TW, False, TW),
        (T, S, False, T),  # a request's script overrides the default
        (NONE, T, False, None),  # `none` in the request overrides it too
        (None, NONE, True, T),  # the distributed routes: Traditional, as that service gives it...
        (None, S, True, T),  # ...also when the default is Simplified
        (None, TW, True, TW),  # a Traditional default is honoured there
        (None, HK, True, HK),
        (S, T, True, S),  # and the request still has the last word
        (NONE, T, True, None),
    ],
)
def test_the_script_a_task_gets(
    requested: str | None, default: str, traditional_route: bool, expected: str | None
) -> None:
    script = chinese_script(
        ChineseScript(requested) if requested else None, default=default, traditional=traditional_route
    )
    assert script == (ChineseScript(expected) if expected else None)

"""Chinese script conversion of transcripts with OpenCC."""

from __future__ import annotations

from functools import lru_cache

import opencc

from app.schemas.tasks import ChineseScript
from app.schemas.transcript import Segment, Transcript

# OpenCC configurations: any Traditional to Simplified; Simplified to Traditional, to Taiwan characters and
# phrasing (软件 -> 軟體), to Hong Kong characters.
CONFIGS = {
    ChineseScript.simplified: "t2s",
    ChineseScript.traditional: "s2t",
    ChineseScript.taiwan: "s2twp",
    ChineseScript.hongkong: "s2hk",
}
CHINESE = ("zh", "yue")


@lru_cache
def converter(script: ChineseScript) -> opencc.OpenCC:
    """The (thread-safe, reusable) converter for `script`."""
    return opencc.OpenCC(CONFIGS[script])


def convert_text(text: str, script: ChineseScript) -> str:
    """`text` in the requested script (`none`: unchanged)."""
    if script is ChineseScript.none:
        return text
    return str(converter(script).convert(text))


def convert_transcript(transcript: Transcript, script: ChineseScript) -> Transcript:
    """Text, segments and words in the requested script; a result in another language is returned unchanged
    (converting Japanese kanji, for instance, would corrupt it)."""
    if script is ChineseScript.none or transcript.language not in CHINESE:
        return transcript
    segments = [convert_segment(segment, script) for segment in transcript.segments]
    return transcript.model_copy(update={"text": convert_text(transcript.text, script), "segments": segments})


def convert_segment(segment: Segment, script: ChineseScript) -> Segment:
    """A segment's text and words in the requested script (the caller knows the language is Chinese)."""
    update: dict[str, object] = {"text": convert_text(segment.text, script)}
    if segment.words:
        # Phrases can span words (鼠标 -> 滑鼠), so convert the words together and cut the result back at the same
        # places when the length is unchanged; otherwise word by word.
        originals = [word.word for word in segment.words]
        joined = convert_text("".join(originals), script)
        if len(joined) == sum(map(len, originals)):
            pieces, at = [], 0
            for original in originals:
                pieces.append(joined[at : at + len(original)])
                at += len(original)
        else:
            pieces = [convert_text(original, script) for original in originals]
        update["words"] = [
            word.model_copy(update={"word": piece}) for word, piece in zip(segment.words, pieces, strict=True)
        ]
    return segment.model_copy(update=update)

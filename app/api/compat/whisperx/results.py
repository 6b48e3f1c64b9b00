"""WhisperX's response and error bodies, as whisperX 3.3.4's align() and assign_word_speakers() shape them, and a
transcript of ours in that shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.schemas.transcript import Transcript, Word

# WhisperX makes every character a "word" in these languages (its LANGUAGES_WITHOUT_SPACES, plus Cantonese).
CHARACTER_LANGUAGES = frozenset({"zh", "yue", "ja"})


class WhisperXWord(BaseModel):
    """One word; in Chinese and Japanese one character."""

    word: str = Field(
        description="The word without surrounding spaces; in Chinese (zh, yue) and Japanese one character, "
        "punctuation included.",
        examples=["Americans,"],
    )
    start: float = Field(description="Start in seconds (3 decimals), from Whisper's word timestamps.", examples=[2.1])
    end: float = Field(description="End in seconds (3 decimals).", examples=[2.64])
    score: float = Field(
        description="Whisper's probability for the word, 0-1 (3 decimals). WhisperX gives a wav2vec2 alignment "
        "score here; this server has no alignment model.",
        examples=[0.912],
    )
    speaker: str | None = Field(
        None,
        description="`SPEAKER_00`, `SPEAKER_01`... when diarization ran; absent otherwise.",
        examples=["SPEAKER_00"],
    )


class WhisperXSegment(BaseModel):
    """A stretch of speech: one Whisper segment, or a part of one where the speaker changes."""

    start: float = Field(description="Start in seconds (3 decimals).", examples=[0.0])
    end: float = Field(description="End in seconds (3 decimals).", examples=[4.2])
    text: str = Field(description="The segment's text as Whisper wrote it.", examples=["And so my fellow Americans,"])
    words: list[WhisperXWord] = Field(description="The segment's words, in order (may be empty).")
    chars: None = Field(
        None,
        description="Present, and null, only on a segment without words (as WhisperX marks segments it could "
        "not align); such a segment keeps Whisper's times.",
    )
    speaker: str | None = Field(
        None, description="The segment's speaker when diarization ran; absent otherwise.", examples=["SPEAKER_00"]
    )


class WhisperXResult(BaseModel):
    """The transcript in WhisperX's shape: no `language`, `text` or `duration`."""

    segments: list[WhisperXSegment] = Field(description="Segments in time order.")
    word_segments: list[WhisperXWord] = Field(description="The words of all segments, in order.")


class WhisperXError(BaseModel):
    """Any error but an invalid parameter, as the WhisperX service answers (its statuses are this server's)."""

    error: str = Field(description="What went wrong and what to do.", examples=["The file is not audio or video."])


class WhisperXIssue(BaseModel):
    """One invalid parameter, as FastAPI reports it."""

    type: str = Field(description="Kind of error.", examples=["int_parsing"])
    loc: list[str | int] = Field(description="Where: `body` or `query`, then the name.", examples=[["query", "x"]])
    msg: str = Field(description="What is wrong.", examples=["Input should be a valid integer"])
    input: Any = Field(None, description="The value given (null when missing).", examples=["two"])


class WhisperXValidationError(BaseModel):
    """An invalid or missing parameter or file: FastAPI's standard 422 body."""

    detail: list[WhisperXIssue] = Field(description="Each invalid parameter.")


def _words(word: Word, *, per_character: bool) -> list[dict[str, Any]]:
    """WhisperX's words for one Whisper word: itself, or (per_character) its characters, its time shared evenly."""
    text = word.word.strip()
    if not text:
        return []
    speaker = {} if word.speaker is None else {"speaker": word.speaker}
    score = round(word.probability, 3)
    if not per_character:
        return [{"word": text, "start": round(word.start, 3), "end": round(word.end, 3), "score": score, **speaker}]
    chars = [c for c in text if not c.isspace()]
    step = (word.end - word.start) / max(len(chars), 1)
    return [
        {
            "word": char,
            "start": round(word.start + i * step, 3),
            "end": round(word.start + (i + 1) * step, 3),
            "score": score,
            **speaker,
        }
        for i, char in enumerate(chars)
    ]


def whisperx_result(transcript: Transcript, *, per_character: bool) -> dict[str, Any]:
    """`{segments, word_segments}` with WhisperX's keys, key order and presence rules."""
    segments: list[dict[str, Any]] = []
    word_segments: list[dict[str, Any]] = []
    for segment in transcript.segments:
        words = [item for word in segment.words or [] for item in _words(word, per_character=per_character)]
        shaped: dict[str, Any] = {
            "start": round(segment.start, 3),
            "end": round(segment.end, 3),
            "text": segment.text.strip(),
            "words": words,
        }
        if not words:
            shaped["chars"] = None
        if segment.speaker is not None:
            shaped["speaker"] = segment.speaker
        segments.append(shaped)
        word_segments.extend(words)
    return {"segments": segments, "word_segments": word_segments}

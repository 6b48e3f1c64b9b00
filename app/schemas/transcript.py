"""The transcript a worker produces and the API returns."""

from __future__ import annotations

import math

from pydantic import BaseModel, Field


class Word(BaseModel):
    """One word with its timing."""

    start: float = Field(description="Start time in seconds.", examples=[0.32])
    end: float = Field(description="End time in seconds.", examples=[0.58])
    word: str = Field(description="The word, with its leading space as the model wrote it.", examples=[" And"])
    probability: float = Field(description="Model confidence, 0-1.", examples=[0.93])
    speaker: str | None = Field(None, description="Speaker label, when diarization was asked for.", examples=["S1"])


class Segment(BaseModel):
    """A stretch of speech, usually a sentence or clause."""

    id: int = Field(description="Position in the transcript, from 0.", examples=[0])
    start: float = Field(description="Start time in seconds.", examples=[0.0])
    end: float = Field(description="End time in seconds.", examples=[4.2])
    text: str = Field(description="Text of the segment.", examples=[" And so my fellow Americans"])
    avg_logprob: float = Field(description="Average token log probability.", examples=[-0.21])
    no_speech_prob: float = Field(description="Probability that the segment holds no speech.", examples=[0.01])
    compression_ratio: float | None = Field(None, description="gzip compression ratio of the text.")
    temperature: float | None = Field(None, description="Sampling temperature that produced the segment.")
    seek: int | None = Field(None, description="Offset of the decoding window, in 10 ms frames.")
    tokens: list[int] | None = Field(None, description="Token ids of the text.")
    words: list[Word] | None = Field(None, description="Word timings, when word_timestamps was asked for.")
    speaker: str | None = Field(None, description="Speaker label, when diarization was asked for.", examples=["S1"])

    def tidied(self, duration: float = math.inf) -> Segment:
        """This segment inside [0, duration], its words inside it and in order (Whisper's word times can stray a
        few tens of milliseconds past either)."""
        start = min(max(self.start, 0.0), duration)
        end = min(max(self.end, start), duration)
        if not self.words:
            return self.model_copy(update={"start": start, "end": end})
        words, floor = [], start
        for word in self.words:
            w_start = min(max(word.start, floor), end)
            w_end = min(max(word.end, w_start), end)
            words.append(word.model_copy(update={"start": w_start, "end": w_end}))
            floor = w_end
        return self.model_copy(update={"start": start, "end": end, "words": words})


class Transcript(BaseModel):
    """The full result of a transcription."""

    text: str = Field(description="The whole transcript.", examples=["And so my fellow Americans, ask not..."])
    language: str | None = Field(description="Detected or requested language code.", examples=["en"])
    language_probability: float | None = Field(description="Confidence of language detection, 0-1.")
    duration: float = Field(description="Audio duration in seconds.", examples=[11.0])
    segments: list[Segment] = Field(description="Timed segments.")

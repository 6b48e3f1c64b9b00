"""The transcription engine interface and its faster-whisper implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.transcribe import Segment as FWSegment
from faster_whisper.transcribe import TranscriptionInfo
from faster_whisper.vad import VadOptions

from app.schemas.tasks import DecodeOptions, TaskType
from app.schemas.transcript import Segment, Transcript, Word
from app.services.media import SAMPLE_RATE
from workers.models import ModelPool

# Audio longer than one Whisper window benefits from decoding windows in parallel batches.
WINDOW_SECONDS = 30.0

SegmentCallback = Callable[[Segment], None]
"""Called with each segment as it is transcribed."""


class TranscriptionInterrupted(Exception):
    """The caller asked the engine to stop (cancelled task, lost lease, shutdown)."""


@dataclass(frozen=True)
class TranscriptionRequest:
    """What to transcribe the audio with."""

    task_id: str | None
    model: str
    task_type: TaskType
    language: str | None
    options: DecodeOptions


@dataclass(frozen=True)
class EngineInfo:
    """Where an engine runs and what it has loaded, as shown by GET /v1/workers."""

    device: str
    device_index: list[int]
    compute_type: str
    models: list[str]


class TranscriptionEngine(Protocol):
    """Turns 16 kHz mono float32 audio into a transcript; runs in a worker thread."""

    def describe(self) -> EngineInfo:
        """Device, compute type and loaded models."""
        ...

    def transcribe(
        self,
        audio: np.ndarray,
        request: TranscriptionRequest,
        *,
        on_segment: SegmentCallback,
        should_stop: Callable[[], bool],
    ) -> Transcript:
        """Transcribe; call `on_segment` as segments arrive and stop with TranscriptionInterrupted on request."""
        ...

    def unload_idle(self) -> list[str]:
        """Free models unused for the configured idle time; returns the names unloaded."""
        ...


def use_batched(options: DecodeOptions, *, duration: float, vad: bool) -> bool:
    """Batched decoding is faster on long audio but cannot condition on previous text or clip by hand."""
    sequential_only = (
        ("condition_on_previous_text" in options.model_fields_set and options.condition_on_previous_text)
        or options.hallucination_silence_threshold is not None
        or options.clip_timestamps is not None
    )
    return duration > WINDOW_SECONDS and vad and not sequential_only


class FasterWhisperEngine:
    """faster-whisper through the model pool; BatchedInferencePipeline for long audio."""

    def __init__(self, pool: ModelPool, *, batch_size: int = 8) -> None:
        self.pool = pool
        self.batch_size = batch_size

    def describe(self) -> EngineInfo:
        """The pool's device and compute type, and the models it holds."""
        return EngineInfo(
            device=self.pool.device,
            device_index=list(self.pool.config.device_index),
            compute_type=self.pool.compute_type,
            models=sorted({key.name for key in self.pool.loaded()}),
        )

    def transcribe(
        self,
        audio: np.ndarray,
        request: TranscriptionRequest,
        *,
        on_segment: SegmentCallback,
        should_stop: Callable[[], bool],
    ) -> Transcript:
        """Run faster-whisper on `audio` with the request's options."""
        with self.pool.use(request.model) as model:
            return self._transcribe(model, audio, request, on_segment=on_segment, should_stop=should_stop)

    def unload_idle(self) -> list[str]:
        """Unload models idle past the pool's limit; their names."""
        return [key.name for key in self.pool.unload_idle()]

    def _transcribe(
        self,
        model: WhisperModel,
        audio: np.ndarray,
        request: TranscriptionRequest,
        *,
        on_segment: SegmentCallback,
        should_stop: Callable[[], bool],
    ) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        opts = request.options
        vad = opts.vad_filter if opts.vad_filter is not None else duration > WINDOW_SECONDS
        common: dict[str, Any] = {
            "language": request.language,
            "task": request.task_type.value,
            "beam_size": opts.beam_size,
            "best_of": opts.best_of,
            "patience": opts.patience,
            "temperature": opts.temperature,
            "compression_ratio_threshold": opts.compression_ratio_threshold,
            "log_prob_threshold": opts.log_prob_threshold,
            "no_speech_threshold": opts.no_speech_threshold,
            "initial_prompt": opts.initial_prompt,
            "hotwords": opts.hotwords,
            "word_timestamps": opts.word_timestamps or opts.diarize,  # speakers are assigned per word
            "prepend_punctuations": opts.prepend_punctuations,
            "append_punctuations": opts.append_punctuations,
            "vad_filter": vad,
            "vad_parameters": VadOptions(**opts.vad_parameters.model_dump()) if opts.vad_parameters else None,
        }
        segments: Iterable[FWSegment]
        if use_batched(opts, duration=duration, vad=vad):
            pipeline = BatchedInferencePipeline(model)
            segments, info = pipeline.transcribe(audio, batch_size=opts.batch_size or self.batch_size, **common)
        else:
            segments, info = model.transcribe(
                audio,
                condition_on_previous_text=opts.condition_on_previous_text,
                clip_timestamps=opts.clip_timestamps or "0",
                hallucination_silence_threshold=opts.hallucination_silence_threshold,
                **common,
            )
        collected: list[Segment] = []
        for raw in segments:
            if should_stop():
                raise TranscriptionInterrupted()
            segment = _segment(len(collected), raw).tidied(duration)
            collected.append(segment)
            on_segment(segment)
        return _transcript(collected, info, duration)


def _segment(index: int, raw: FWSegment) -> Segment:
    words = (
        [Word(start=w.start, end=w.end, word=w.word, probability=w.probability) for w in raw.words]
        if raw.words is not None
        else None
    )
    return Segment(
        id=index,
        start=raw.start,
        end=raw.end,
        text=raw.text,
        avg_logprob=raw.avg_logprob,
        no_speech_prob=raw.no_speech_prob,
        compression_ratio=raw.compression_ratio,
        temperature=raw.temperature,
        seek=raw.seek,
        tokens=list(raw.tokens),
        words=words,
    )


def _transcript(segments: list[Segment], info: TranscriptionInfo, duration: float) -> Transcript:
    return Transcript(
        text="".join(segment.text for segment in segments).strip(),
        language=info.language,
        language_probability=info.language_probability,
        duration=duration,
        segments=segments,
    )

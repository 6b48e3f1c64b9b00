"""The transcription engine interface and its faster-whisper implementation."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import Segment as FWSegment
from faster_whisper.transcribe import TranscriptionInfo
from faster_whisper.vad import VadOptions

from app.errors import TranscriptionInterrupted
from app.schemas.tasks import DecodeOptions, TaskType
from app.schemas.transcript import Segment, Transcript, Word
from app.services.chinese import CHINESE, convert_segment
from app.services.media import SAMPLE_RATE
from app.services.resegment import split_long_segments
from workers import windows
from workers.batching import BatchScheduler, Job
from workers.models import ModelPool

log = logging.getLogger(__name__)

# Audio longer than one Whisper window benefits from decoding windows in parallel batches.
WINDOW_SECONDS = 30.0

SegmentCallback = Callable[[Segment], None]
"""Called with each segment as it is transcribed."""

_stop_checks = threading.local()
"""The current transcription's `should_stop` in each engine thread (models are shared between threads)."""
_wrapping = threading.Lock()


class _StoppableGenerator:
    """Stands in for a WhisperModel's CTranslate2 model: refuses to start a `generate` call (a batch, or one
    attempt of a temperature fallback) once the calling thread's transcription was asked to stop, so a stop takes
    effect between attempts, not only between segments."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        should_stop: Callable[[], bool] | None = getattr(_stop_checks, "current", None)
        if should_stop is not None and should_stop():
            raise TranscriptionInterrupted()
        return self._inner.generate(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _stoppable(model: WhisperModel) -> WhisperModel:
    """The model with its generate calls honouring the current thread's stop check (wrapped once per model)."""
    with _wrapping:
        if not isinstance(model.model, _StoppableGenerator):
            model.model = _StoppableGenerator(model.model)
    return model


@contextmanager
def _stop_check(should_stop: Callable[[], bool]) -> Iterator[None]:
    _stop_checks.current = should_stop
    try:
        yield
    finally:
        _stop_checks.current = None


@dataclass(frozen=True)
class TranscriptionRequest:
    """What to transcribe the audio with."""

    task_id: str | None
    model: str
    task_type: TaskType
    language: str | None
    options: DecodeOptions
    priority: int = 1
    """0 high, 1 normal, 2 low: the order in which the batch scheduler takes windows."""


@dataclass(frozen=True)
class EngineInfo:
    """Where an engine runs and what it has loaded, as shown by GET /v1/workers."""

    device: str
    device_index: list[int]
    compute_type: str
    models: list[str]
    batch_size: int = 0
    """Windows per shared forward pass with cross-task batching; 0 when tasks are decoded one by one."""

    @property
    def default_concurrency(self) -> int:
        """Tasks to run at once when WHISPER_WORKER_CONCURRENCY is 0: enough for a full batch while the next
        tasks are being prepared; one at a time without batching."""
        return 2 * self.batch_size if self.batch_size else 1


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


def _sequential_only(options: DecodeOptions) -> bool:
    """Options that need each window decoded after the previous one (or only where the user clips)."""
    return bool(
        ("condition_on_previous_text" in options.model_fields_set and options.condition_on_previous_text)
        or options.hallucination_silence_threshold is not None
        or options.clip_timestamps is not None
    )


def use_batched(options: DecodeOptions, *, duration: float, vad: bool) -> bool:
    """Batched decoding is faster on long audio but cannot condition on previous text or clip by hand."""
    return duration > WINDOW_SECONDS and vad and not _sequential_only(options)


def use_scheduler(options: DecodeOptions, *, duration: float, vad: bool) -> bool:
    """Whether the task's windows can go through the cross-task batch scheduler: any audio of one window, longer
    audio split by VAD, unless its options need sequential decoding."""
    return (duration <= WINDOW_SECONDS or vad) and not _sequential_only(options)


def job_share(device: str, batch_size: int) -> int:
    """Windows one task may put in a batch. On a CPU a batch costs about the sum of its windows, so a long task
    takes a quarter of a batch (no slower alone: measured on long_en.flac) and a short task arriving meanwhile is
    done a batch later, not after the whole long task. On a GPU a fuller batch costs little more: no limit."""
    return batch_size if device == "cuda" else max(1, batch_size // 4)


class FasterWhisperEngine:
    """faster-whisper through the model pool.

    With `batching`, the windows of all tasks running at once share forward passes (workers/batching.py), in
    batches of up to `batch_size`, decoded by `decoders` threads (one per model replica). Without it each task is
    decoded on its own: BatchedInferencePipeline for long audio, the sequential decoder for the rest.
    """

    def __init__(self, pool: ModelPool, *, batch_size: int = 8, batching: bool = False, decoders: int = 1) -> None:
        self.pool = pool
        self.batch_size = batch_size
        self.scheduler: BatchScheduler[windows.Window, windows.Decoded] | None = (
            BatchScheduler(
                windows.decode, batch_size=batch_size, threads=decoders, job_share=job_share(pool.device, batch_size)
            )
            if batching
            else None
        )

    def describe(self) -> EngineInfo:
        """The pool's device and compute type, and the models it holds."""
        return EngineInfo(
            device=self.pool.device,
            device_index=list(self.pool.config.device_index),
            compute_type=self.pool.compute_type,
            models=sorted({key.name for key in self.pool.loaded()}),
            batch_size=self.batch_size if self.scheduler is not None else 0,
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
        with self.pool.use(request.model) as model, _stop_check(should_stop):
            return self._transcribe(_stoppable(model), audio, request, on_segment=on_segment, should_stop=should_stop)

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
        if self.scheduler is not None and use_scheduler(opts, duration=duration, vad=vad):
            return self._transcribe_scheduled(
                self.scheduler, model, audio, request, vad=vad, on_segment=on_segment, should_stop=should_stop
            )
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
        resegment: Callable[[Segment, int], list[Segment]] | None = None
        if use_batched(opts, duration=duration, vad=vad):
            pipeline = BatchedInferencePipeline(model)
            batch_size = opts.batch_size or self.batch_size
            segments, info = pipeline.transcribe(audio, batch_size=batch_size, **common | {"word_timestamps": True})
            resegment = _batched_resegmenter(model, keep_words=bool(common["word_timestamps"]))
        else:
            segments, info = model.transcribe(
                audio,
                condition_on_previous_text=opts.condition_on_previous_text,
                clip_timestamps=opts.clip_timestamps or "0",
                hallucination_silence_threshold=opts.hallucination_silence_threshold,
                **common,
            )
        # Segments handed over as they come (streamed to clients) are in the task's Chinese script already; the
        # whole transcript is converted afterwards (postprocess), with the speakers.
        script = opts.chinese_script if info.language in CHINESE else None
        collected: list[Segment] = []
        for raw in segments:
            segment = _segment(len(collected), raw).tidied(duration)
            for piece in resegment(segment, len(collected)) if resegment else [segment]:
                if should_stop():
                    raise TranscriptionInterrupted()
                collected.append(piece)
                on_segment(convert_segment(piece, script) if script else piece)
        return _transcript(collected, info, duration)

    def _transcribe_scheduled(
        self,
        scheduler: BatchScheduler[windows.Window, windows.Decoded],
        model: WhisperModel,
        audio: np.ndarray,
        request: TranscriptionRequest,
        *,
        vad: bool,
        on_segment: SegmentCallback,
        should_stop: Callable[[], bool],
    ) -> Transcript:
        """Plan the task's windows here, decode them with every other task's, collect its segments in order."""
        duration = len(audio) / SAMPLE_RATE
        opts = request.options
        plan = windows.plan(
            model, audio, options=opts, language=request.language, task=request.task_type.value, vad=vad
        )
        job = scheduler.submit(Job(plan.windows, group=plan.group, priority=request.priority))
        log.info(
            "decoding %d windows in shared batches (language: %s)",
            len(plan.windows),
            plan.language or "detected in its batch",
        )
        language, probability = plan.language, plan.language_probability
        resegment = _batched_resegmenter(model, keep_words=opts.word_timestamps or opts.diarize)
        collected: list[Segment] = []
        for decoded in job.results(should_stop):
            if language is None:
                language, probability = decoded.language, decoded.language_probability
            script = opts.chinese_script if language in CHINESE else None
            for raw in windows.to_segments(plan, decoded.segments):
                for piece in resegment(_segment(len(collected), raw).tidied(duration), len(collected)):
                    if should_stop():
                        raise TranscriptionInterrupted()
                    collected.append(piece)
                    on_segment(convert_segment(piece, script) if script else piece)
        return Transcript(
            text="".join(segment.text for segment in collected).strip(),
            language=language or request.language or "en",
            language_probability=probability,
            duration=duration,
            segments=collected,
        )


def _batched_resegmenter(model: WhisperModel, *, keep_words: bool) -> Callable[[Segment, int], list[Segment]]:
    """Batched decoding gives one segment per window (up to 30 s): cut each at sentence ends and long pauses
    by its word timings (asked for whatever the request wants: about 9 % more time on long_en.flac, same text),
    numbered from the given id, then drop the words unless the request wants them (word_timestamps, or diarize)."""
    decode = Tokenizer(model.hf_tokenizer, multilingual=False).decode  # only decodes: no task or language needed

    def resegment(segment: Segment, first_id: int) -> list[Segment]:
        pieces = split_long_segments([segment], first_id=first_id, decode=decode)
        return pieces if keep_words else [piece.model_copy(update={"words": None}) for piece in pieces]

    return resegment


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

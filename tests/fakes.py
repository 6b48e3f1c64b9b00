"""A fast engine behind the same Protocol as faster-whisper, for queue and API tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
from faster_whisper.tokenizer import _LANGUAGE_CODES

from app.errors import TranscriptionInterrupted
from app.schemas.transcript import Segment, Transcript
from app.services.media import SAMPLE_RATE
from workers.engine import EngineInfo, TranscriptionRequest


class FakeEngine:
    """One segment per `segment_seconds` of audio, named by its index; optional delay and failure."""

    def __init__(
        self, *, segment_seconds: float = 2.0, delay_per_segment: float = 0.0, fail_with: Exception | None = None
    ) -> None:
        self.segment_seconds = segment_seconds
        self.delay_per_segment = delay_per_segment
        self.fail_with = fail_with
        self.calls: list[tuple[str, float]] = []
        self.started = threading.Event()

    def describe(self) -> EngineInfo:
        return EngineInfo(device="cpu", device_index=[0], compute_type="fake", models=["fake"])

    def unload_idle(self) -> list[str]:
        return []

    def transcribe(
        self,
        audio: np.ndarray,
        request: TranscriptionRequest,
        *,
        on_segment: Callable[[Segment], None],
        should_stop: Callable[[], bool],
    ) -> Transcript:
        duration = len(audio) / SAMPLE_RATE
        self.calls.append((request.model, duration))
        self.started.set()
        if self.fail_with is not None:
            raise self.fail_with
        if request.language is not None and request.language not in _LANGUAGE_CODES:
            raise ValueError(f"'{request.language}' is not a valid language code")  # as faster-whisper does
        segments = []
        start = 0.0
        while start < duration:
            if should_stop():
                raise TranscriptionInterrupted()
            time.sleep(self.delay_per_segment)
            end = min(duration, start + self.segment_seconds)
            segments.append(
                Segment(
                    id=len(segments),
                    start=start,
                    end=end,
                    text=f" segment {len(segments)}.",
                    avg_logprob=-0.1,
                    no_speech_prob=0.0,
                )
            )
            on_segment(segments[-1])
            start = end
        text = "".join(s.text for s in segments).strip()
        return Transcript(
            text=text, language=request.language or "en", language_probability=1.0, duration=duration, segments=segments
        )


class StallingEngine(FakeEngine):
    """Produces no segment until asked to stop (a long batch or temperature fallback); after `give_up_seconds`
    without a stop request it returns a transcript like FakeEngine. `stopped` tells which happened."""

    def __init__(self, *, give_up_seconds: float) -> None:
        super().__init__()
        self.give_up_seconds = give_up_seconds
        self.stopped = threading.Event()

    def transcribe(
        self,
        audio: np.ndarray,
        request: TranscriptionRequest,
        *,
        on_segment: Callable[[Segment], None],
        should_stop: Callable[[], bool],
    ) -> Transcript:
        self.started.set()
        deadline = time.monotonic() + self.give_up_seconds
        while time.monotonic() < deadline:
            if should_stop():
                self.stopped.set()
                raise TranscriptionInterrupted()
            time.sleep(0.05)
        return super().transcribe(audio, request, on_segment=on_segment, should_stop=lambda: False)

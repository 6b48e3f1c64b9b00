"""A fast engine behind the same Protocol as faster-whisper, for queue and API tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from app.schemas.transcript import Segment, Transcript
from app.services.media import SAMPLE_RATE
from workers.engine import EngineInfo, TranscriptionInterrupted, TranscriptionRequest


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

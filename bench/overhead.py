"""Throughput of the whole service vs faster-whisper called directly, on the same clips, model and settings.

    python -m bench.overhead [--model base] [--audio ../shared/audio]

(a) in-process: WhisperModel.transcribe (BatchedInferencePipeline for clips over 30 s, as the service does),
    model loaded before timing.
(b) service: `whisper-service serve` in its own process (SQLite, one embedded worker); all clips uploaded at once,
    then polled until done; the worker is warmed up with one task first.
Prints audio seconds per wall second for both and the ratio b/a (target >= 0.90).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

from app.settings import Settings
from workers.models import model_location

CLIPS = [
    "jfk.wav",
    "librivox_0870.wav",
    "librivox_0880.wav",
    "librivox_0890.wav",
    "en_sonnet001.wav",
    "en_asterisk_demo-congrats.wav",
    "long_en.flac",
]


def direct(model_name: str, paths: list[Path], cache: Path) -> tuple[float, float]:
    """Audio seconds and wall seconds for faster-whisper in this process."""
    model = WhisperModel(model_location(model_name, cache), device="cpu", compute_type="int8")
    batched = BatchedInferencePipeline(model)
    audio_seconds = 0.0
    start = time.perf_counter()
    for path in paths:
        audio = decode_audio(str(path), sampling_rate=16_000)
        duration = len(audio) / 16_000
        audio_seconds += duration
        if duration > 30:
            segments, _ = batched.transcribe(audio, batch_size=8, vad_filter=True)
        else:
            segments, _ = model.transcribe(audio, vad_filter=False)
        "".join(s.text for s in segments)
    return audio_seconds, time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def through_service(model_name: str, paths: list[Path], cache: Path) -> tuple[float, float]:
    """Audio seconds and wall seconds from the first upload to the last completed task."""
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    env = {
        **os.environ,
        "WHISPER_DATA_DIR": str(data_dir),
        "WHISPER_MODEL_CACHE_DIR": str(cache),
        "WHISPER_PORT": str(port),
        "WHISPER_DEFAULT_MODEL": model_name,
        "WHISPER_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=120) as http:
            for _ in range(300):
                try:
                    http.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
            wait(http, [submit(http, paths[0])])  # warm-up: the worker loads the model
            start = time.perf_counter()
            ids = [submit(http, path) for path in paths]
            durations = wait(http, ids)
            return sum(durations), time.perf_counter() - start
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def submit(http: httpx.Client, path: Path) -> str:
    with path.open("rb") as f:
        # dedupe off: the warm-up clip comes again, and must be transcribed again
        response = http.post("/v1/tasks", files={"file": (path.name, f)}, data={"dedupe": "false"})
    response.raise_for_status()
    return str(response.json()["id"])


def wait(http: httpx.Client, ids: list[str]) -> list[float]:
    """Poll the oldest unfinished task every 0.25 s (one worker finishes them in order)."""
    durations = []
    for task_id in ids:
        while True:
            task = http.get(f"/v1/tasks/{task_id}").json()
            if task["status"] == "completed":
                durations.append(float(task["duration"]))
                break
            if task["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"task {task_id} {task['status']}: {task['error']}")
            time.sleep(0.25)
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--audio", default=str(Path(__file__).resolve().parents[2] / "shared" / "audio"))
    args = parser.parse_args()
    paths = [Path(args.audio) / name for name in CLIPS]
    cache = Settings().model_dir
    a_audio, a_wall = direct(args.model, paths, cache)
    b_audio, b_wall = through_service(args.model, paths, cache)
    rate_a, rate_b = a_audio / a_wall, b_audio / b_wall
    print(f"{'path':<28}{'audio s':>10}{'wall s':>10}{'audio s / wall s':>18}")
    print(f"{'(a) faster-whisper direct':<28}{a_audio:>10.1f}{a_wall:>10.2f}{rate_a:>18.2f}")
    print(f"{'(b) through the service':<28}{b_audio:>10.1f}{b_wall:>10.2f}{rate_b:>18.2f}")
    print(f"throughput ratio b/a = {rate_b / rate_a:.3f}  (target >= 0.90)")


if __name__ == "__main__":
    main()

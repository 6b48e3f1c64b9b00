"""Concurrency scaling: one worker process running 1, 2 or 4 tasks at once, through `whisper-service serve`.

    python -m bench.scaling [--audio ../shared/audio] [--tasks 8]

For each concurrency the service starts fresh (SQLite, one embedded worker, WHISPER_WORKER_CONCURRENCY=N), warms the
model up, then gets the same clips uploaded at once; prints the wall time to the last completion, audio seconds per
wall second and the median time a task waited plus ran.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from app.settings import Settings
from bench.harness import submit
from tests.service import Service

CLIPS = ["jfk.wav", "librivox_0870.wav", "en_asterisk_demo-congrats.wav", "es_asterisk_demo-nogo.wav"]


def run(concurrency: int, paths: list[Path], cache: Path) -> tuple[float, float, float]:
    """(audio seconds, wall seconds, median task latency) for one concurrency."""
    env = {"WHISPER_WORKER_CONCURRENCY": str(concurrency), "WHISPER_LOG_LEVEL": "WARNING"}
    service = Service(Path(tempfile.mkdtemp(prefix="bench-scaling-")), cache, env=env)
    try:
        with httpx.Client(base_url=service.url, timeout=120) as http:
            wait(http, [submit(http, paths[0])])  # warm-up: the worker loads the model
            started = time.perf_counter()
            ids = [submit(http, path) for path in paths]
            finished = wait(http, ids)
            wall = time.perf_counter() - started
            audio = sum(float(http.get(f"/v1/tasks/{i}").json()["duration"]) for i in ids)
            return audio, wall, statistics.median(t - started for t in finished)
    finally:
        service.stop()


def wait(http: httpx.Client, ids: list[str]) -> list[float]:
    """When each task completed (perf_counter), polling every 0.1 s."""
    done: dict[str, float] = {}
    while len(done) < len(ids):
        for task_id in ids:
            if task_id in done:
                continue
            task = http.get(f"/v1/tasks/{task_id}").json()
            if task["status"] == "completed":
                done[task_id] = time.perf_counter()
            elif task["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"task {task_id} {task['status']}: {task['error']}")
        time.sleep(0.1)
    return [done[i] for i in ids]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "audio")
    parser.add_argument("--tasks", type=int, default=8)
    args = parser.parse_args()
    paths = [args.audio / CLIPS[i % len(CLIPS)] for i in range(args.tasks)]
    cache = Settings().model_dir
    print("| concurrent tasks | audio s | wall s | audio s / wall s | median task latency s |")
    print("| --- | --- | --- | --- | --- |")
    for concurrency in (1, 2, 4):
        audio, wall, latency = run(concurrency, paths, cache)
        print(f"| {concurrency} | {audio:.1f} | {wall:.1f} | {audio / wall:.1f} | {latency:.1f} |")


if __name__ == "__main__":
    main()

"""Peak memory of the API process during a 500 MB upload, and of a worker process transcribing with `base`.

    python -m bench.memory [--audio ../shared/audio] [--upload-mb 500]

(1) `whisper-service serve --workers 0` (API only, SQLite); a generated WAV of --upload-mb MB (48 kHz stereo,
    about 43 minutes for 500 MB) is streamed to POST /v1/tasks while the API process's RSS is sampled every 50 ms,
    through the upload, the decoding to 16 kHz and the storing of the audio. Target: under 250 MB.
(2) `whisper-service worker` on the same database transcribes long_en.flac (110 s) with the bundled `base` model
    while its RSS is sampled. Target: under 1 GB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

import httpx
import numpy as np

from app.settings import Settings
from tests.service import Service


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return 0.0


class PeakSampler:
    """Samples a process's RSS in a thread until stopped."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.stopped = pid, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakSampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.05)


def big_wav(path: Path, megabytes: int) -> Path:
    """A 48 kHz stereo 16-bit WAV of about `megabytes` MB (a quiet tone with noise)."""
    rate, seconds_per_block = 48_000, 10
    blocks = max(1, round(megabytes * 1024 * 1024 / (rate * 4 * seconds_per_block)))
    t = np.arange(rate * seconds_per_block) / rate
    rng = np.random.default_rng(0)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        for _ in range(blocks):
            mono = 2000 * np.sin(2 * np.pi * 220 * t) + rng.normal(0, 300, t.size)
            out.writeframes(np.repeat(mono.astype(np.int16)[:, None], 2, axis=1).tobytes())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "audio")
    parser.add_argument("--upload-mb", type=int, default=500)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    cache = Settings().model_dir
    wav = big_wav(work / "big.wav", args.upload_mb)
    size_mb = wav.stat().st_size / 1024 / 1024
    api = Service(work / "data", cache, "--workers", "0", env={"WHISPER_LOG_LEVEL": "WARNING"})
    try:
        with httpx.Client(base_url=api.url, timeout=600) as http:
            idle_api = rss_mb(api.proc.pid)
            with PeakSampler(api.proc.pid) as sampler, wav.open("rb") as f:
                started = time.perf_counter()
                response = http.post("/v1/tasks", files={"file": ("big.wav", f)})
                upload_s = time.perf_counter() - started
            response.raise_for_status()
            big = response.json()
            http.post(f"/v1/tasks/{big['id']}/cancel").raise_for_status()  # not for the worker
            api_peak = sampler.peak

            env = {**os.environ, **api.env, "WHISPER_LOG_LEVEL": "WARNING"}
            worker = subprocess.Popen([sys.executable, "-m", "workers"], env=env)
            try:
                with PeakSampler(worker.pid) as sampler:
                    with (args.audio / "long_en.flac").open("rb") as f:
                        task = http.post("/v1/tasks", files={"file": ("long_en.flac", f)}).json()
                    while http.get(f"/v1/tasks/{task['id']}").json()["status"] not in ("completed", "failed"):
                        time.sleep(0.2)
                worker_peak = sampler.peak
            finally:
                worker.terminate()
                worker.wait(timeout=60)
    finally:
        api.stop()
    print("| process | what | peak RSS MB | target |")
    print("| --- | --- | --- | --- |")
    print(
        f"| API (idle {idle_api:.0f} MB) | upload + decode of a {size_mb:.0f} MB WAV ({upload_s:.1f} s) "
        f"| {api_peak:.0f} | < 250 |"
    )
    print(f"| worker | transcribing long_en.flac (110 s) with base, CPU int8 | {worker_peak:.0f} | < 1024 |")


if __name__ == "__main__":
    main()

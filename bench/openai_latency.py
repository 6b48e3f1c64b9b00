"""Latency of /v1/audio/transcriptions (official openai client, real server) vs faster-whisper in-process.

    python -m bench.openai_latency [--runs 5] [--model base]

(a) in-process: decode the file and WhisperModel.transcribe it (model loaded before timing);
(b) `whisper-service serve` (SQLite, one embedded worker, warmed up): `client.audio.transcriptions.create`.
Both use the same model and the service's decoding choices. Prints median seconds per clip and the overhead of (b)
over (a). Target: overhead <= 10 %.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio
from openai import OpenAI

from app.settings import Settings
from workers.models import model_location

CLIPS = ["jfk.wav", "en_asterisk_demo-congrats.wav"]
KEY = "bench-secret-key"


def direct(model: WhisperModel, path: Path) -> float:
    start = time.perf_counter()
    audio = decode_audio(str(path), sampling_rate=16_000)
    if len(audio) / 16_000 > 30:
        segments, _ = BatchedInferencePipeline(model).transcribe(audio, batch_size=8, vad_filter=True)
    else:
        segments, _ = model.transcribe(audio)
    "".join(s.text for s in segments)
    return time.perf_counter() - start


def through_api(client: OpenAI, path: Path) -> float:
    start = time.perf_counter()
    with path.open("rb") as f:
        # dedupe off: every run transcribes (an identical request would otherwise get the stored result at once)
        client.audio.transcriptions.create(model="whisper-1", file=f, extra_body={"dedupe": "false"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="base")
    parser.add_argument("--audio", default=str(Path(__file__).resolve().parents[2] / "shared" / "audio"))
    args = parser.parse_args()
    cache = Settings().model_dir
    paths = [Path(args.audio) / name for name in CLIPS]

    model = WhisperModel(model_location(args.model, cache), device="cpu", compute_type="int8")
    direct_times = {p.name: statistics.median(direct(model, p) for _ in range(args.runs)) for p in paths}
    del model

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "WHISPER_DATA_DIR": tempfile.mkdtemp(prefix="bench-openai-"),
        "WHISPER_MODEL_CACHE_DIR": str(cache),
        "WHISPER_PORT": str(port),
        "WHISPER_API_KEYS": f"bench:{KEY}",
        "WHISPER_DEFAULT_MODEL": args.model,
        "WHISPER_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve"], env=env)
    try:
        for _ in range(300):
            try:
                httpx.get(f"http://127.0.0.1:{port}/health")
                break
            except httpx.TransportError:
                time.sleep(0.2)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=300)
        through_api(client, paths[0])  # warm-up: the worker loads the model
        api_times = {p.name: statistics.median(through_api(client, p) for _ in range(args.runs)) for p in paths}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    print(f"{'clip':<32}{'in-process s':>14}{'/v1/audio s':>14}{'overhead':>10}")
    for name in direct_times:
        a, b = direct_times[name], api_times[name]
        print(f"{name:<32}{a:>14.3f}{b:>14.3f}{(b / a - 1) * 100:>9.1f}%")
    print("target: overhead <= 10 %")


if __name__ == "__main__":
    main()

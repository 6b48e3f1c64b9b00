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
import time
from pathlib import Path

from faster_whisper import decode_audio

from app.settings import Settings
from bench.harness import AUDIO_DIR, batch_size, load_model, serving, submit, transcribe, wait_all

CLIPS = [
    "jfk.wav",
    "librivox_0870.wav",
    "librivox_0880.wav",
    "librivox_0890.wav",
    "en_sonnet001.wav",
    "en_asterisk_demo-congrats.wav",
    "long_en.flac",
]


def direct(model_name: str, paths: list[Path], settings: Settings) -> tuple[float, float]:
    """Audio seconds and wall seconds for faster-whisper in this process."""
    model = load_model(model_name, settings.model_dir, device=settings.device, compute_type=settings.compute_type)
    audio_seconds = 0.0
    start = time.perf_counter()
    for path in paths:
        audio = decode_audio(str(path), sampling_rate=16_000)
        audio_seconds += len(audio) / 16_000
        transcribe(model, audio, batch_size=batch_size(settings.batch_size, settings.device))
    return audio_seconds, time.perf_counter() - start


def through_service(model_name: str, paths: list[Path], settings: Settings) -> tuple[float, float]:
    """Audio seconds and wall seconds from the first upload to the last completed task."""
    with serving(settings.model_dir, {"WHISPER_DEFAULT_MODEL": model_name}, warm_up=paths[0]) as http:
        start = time.perf_counter()
        tasks = wait_all(http, [submit(http, path) for path in paths])
        return sum(float(task["duration"]) for task in tasks), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--audio", type=Path, default=AUDIO_DIR)
    args = parser.parse_args()
    paths = [args.audio / name for name in CLIPS]
    settings = Settings()
    a_audio, a_wall = direct(args.model, paths, settings)
    b_audio, b_wall = through_service(args.model, paths, settings)
    rate_a, rate_b = a_audio / a_wall, b_audio / b_wall
    print(f"{'path':<28}{'audio s':>10}{'wall s':>10}{'audio s / wall s':>18}")
    print(f"{'(a) faster-whisper direct':<28}{a_audio:>10.1f}{a_wall:>10.2f}{rate_a:>18.2f}")
    print(f"{'(b) through the service':<28}{b_audio:>10.1f}{b_wall:>10.2f}{rate_b:>18.2f}")
    print(f"throughput ratio b/a = {rate_b / rate_a:.3f}  (target >= 0.90)")


if __name__ == "__main__":
    main()

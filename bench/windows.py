"""Where batching's gain comes from: 8 short clips decoded in-process, one by one vs as batched windows.

    python -m bench.windows [--audio ../shared/audio] [--device cpu] [--repeat 2]

(a) faster-whisper's sequential `transcribe`, one clip after another (what a task under 30 s got before batching);
(b) the same clips planned as the worker plans them (workers/windows.py) and decoded in batches of 1, 2, 4 and 8,
with word timings (always computed: they cut segments). Prints wall seconds per run; the model is loaded and warmed
up before timing.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from faster_whisper import decode_audio

from app.schemas.tasks import DecodeOptions
from app.settings import Settings
from bench.harness import load_model
from workers import windows

CLIPS = [
    "jfk.wav",
    "zh_aishell_W0121.wav",
    "fr_asterisk_demo-congrats.wav",
    "es_asterisk_demo-nogo.wav",
    "librivox_0870.wav",
    "fr_asterisk_invalid.wav",
    "es_asterisk_ss-noservice.wav",
    "librivox_0880.wav",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, default=Path("../shared/audio"))
    parser.add_argument("--device", default=os.environ.get("WHISPER_DEVICE", "cpu"))
    parser.add_argument("--compute-type", default=os.environ.get("WHISPER_COMPUTE_TYPE", "auto"))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    model = load_model("base", Settings().model_dir, device=args.device, compute_type=args.compute_type)
    audios = [decode_audio(str(args.audio / name), sampling_rate=16_000) for name in CLIPS]
    seconds = sum(len(audio) for audio in audios) / 16_000
    print(f"{len(CLIPS)} clips, {seconds:.1f} s of audio, model base on {args.device}")
    segments, _ = model.transcribe(audios[0], beam_size=5)
    list(segments)  # warm-up
    print("| run | (a) sequential s | (b) batch 1 s | batch 2 s | batch 4 s | batch 8 s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for run in range(1, args.repeat + 1):
        started = time.perf_counter()
        for audio in audios:
            segments, _ = model.transcribe(audio, beam_size=5)
            list(segments)
        figures = [time.perf_counter() - started]
        for size in (1, 2, 4, 8):
            started = time.perf_counter()
            options = DecodeOptions()
            planned = [
                window
                for audio in audios
                for window in windows.plan(
                    model, audio, options=options, language=None, task="transcribe", vad=False
                ).windows
            ]
            for first in range(0, len(planned), size):
                windows.decode(planned[first : first + size])
            figures.append(time.perf_counter() - started)
        print(f"| {run} | " + " | ".join(f"{figure:.2f}" for figure in figures) + " |")


if __name__ == "__main__":
    main()

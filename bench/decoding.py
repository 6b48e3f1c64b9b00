"""Batched vs sequential decoding, in-process, on the long clips: the choice the service makes past 30 s.

    python -m bench.decoding [--model base] [--audio ../shared/audio] [--batch-size 8]

Batched: faster-whisper's BatchedInferencePipeline behind Silero VAD (the service's default for audio over 30 s).
Sequential: WhisperModel.transcribe with VAD (what `condition_on_previous_text=true` or `clip_timestamps` select).
Prints wall seconds, audio seconds per wall second and WER against the reference for each.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jiwer
from faster_whisper import decode_audio
from whisper_normalizer.english import EnglishTextNormalizer

from app.schemas.tasks import DecodeOptions, TaskType
from app.settings import Settings
from workers.engine import TranscriptionRequest
from workers.main import build_engine

CLIPS = ["en_sonnet001.wav", "long_en.flac"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="base")
    parser.add_argument("--audio", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "audio")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    engine = build_engine(Settings(device="cpu", preload_models=[args.model]))
    normalize = EnglishTextNormalizer()
    print("| clip | audio s | mode | wall s | audio s / wall s | WER |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in CLIPS:
        audio = decode_audio(str(args.audio / name), sampling_rate=16_000)
        reference = (args.audio / f"{name.rsplit('.', 1)[0]}.txt").read_text()
        modes = {
            "batched": DecodeOptions(vad_filter=True, batch_size=args.batch_size),
            "sequential": DecodeOptions(vad_filter=True, condition_on_previous_text=True),
        }
        for mode, options in modes.items():
            request = TranscriptionRequest(
                task_id=None, model=args.model, task_type=TaskType.transcribe, language="en", options=options
            )
            started = time.perf_counter()
            transcript = engine.transcribe(audio, request, on_segment=lambda s: None, should_stop=lambda: False)
            wall = time.perf_counter() - started
            error = jiwer.wer(normalize(reference), normalize(transcript.text))
            seconds = len(audio) / 16_000
            print(f"| {name} | {seconds:.1f} | {mode} | {wall:.2f} | {seconds / wall:.1f} | {error:.3f} |")


if __name__ == "__main__":
    main()

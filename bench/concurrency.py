"""Many tasks at once: bare faster-whisper one by one vs the service without and with cross-task batching (issue 14).

    python -m bench.concurrency [--audio ../shared/audio] [--model base] [--device auto] [--compute-type auto]
                                [--quick]

Clips: the shared clips under 30 s with a reference transcript of their own (MANIFEST.tsv; jfk.mp3 and
jfk_video.mp4 repeat jfk.wav and are left out), English, Mandarin, French and Spanish taken in turn: 12 in all.
Cases:
  8 short   8 of them, all sent at once
  16 short  the 12 and the first 4 again (uploaded with dedupe=false, so each is a task of its own)
  mix       long_en.flac (110 s) sent first, then the 8 short clips right after
Runs, for each case:
  (a) faster-whisper in this process, one clip after another, with the service's defaults (bench.harness: beam 5,
      VAD and BatchedInferencePipeline past 30 s), the model loaded and warmed up before timing
  (b) `whisper-service serve` with WHISPER_BATCHING=false: one decode per task, as before issue 14
  (c) `whisper-service serve` with WHISPER_BATCHING=true (the default)
Each service run starts `serve` on a fresh SQLite database in a temporary directory and warms its worker up with one
task; then the tasks are created through `POST /v1/tasks` (dedupe=false), the short ones from parallel uploads.
Device and compute type (`--device`, `--compute-type`, default WHISPER_DEVICE and WHISPER_COMPUTE_TYPE) are the same
for all runs; WHISPER_BATCH_SIZE is read by the service as usual.

Prints per case and run: wall seconds (from the first upload to the last task's finished_at), throughput relative
to (a) and to (b), median and p95 task latency (a task's created_at to its finished_at; for (a), from the start of
the run, when all clips are there, to the end of that clip), the largest per-clip WER loss against (a) (a clip
that got better counts as 0) and, in the mix, whether every short clip finished before the long one; then the WER
of each clip (English after Whisper's English normalizer, French and Spanish after its basic one with accents
folded, Mandarin by characters after conversion to Simplified) and a check of the issue's targets: (c) at >= 1.5x
the throughput of (b) on 8 short clips, the WER of every clip in (c) at most 0.02 above (a), every short clip
before the long one in the mix.
`--quick` runs the 8-clip case only.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, zip_longest
from pathlib import Path

import jiwer
from faster_whisper import WhisperModel, decode_audio
from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer

from app.schemas.tasks import ChineseScript
from app.services.chinese import convert_text
from app.settings import Settings
from bench.harness import AUDIO_DIR, batch_size, load_model, serving, submit, transcribe, wait_all
from workers.engine import WINDOW_SECONDS
from workers.models import resolve_compute_type, resolve_device

LANGUAGES = ("en", "zh", "fr", "es")
LONG_CLIP = "long_en.flac"
RUNS = ("(a)", "(b)", "(c)")
SERVICE_ENV = {"(b)": {"WHISPER_BATCHING": "false"}, "(c)": {"WHISPER_BATCHING": "true"}}
TARGET_SPEEDUP = 1.5
WER_BOUND = 0.02
HAN = re.compile(r"[\u4e00-\u9fff]")
_english = EnglishTextNormalizer()
_basic = BasicTextNormalizer(remove_diacritics=True)


@dataclass(frozen=True)
class Clip:
    """A shared clip and its reference transcript."""

    path: Path
    language: str
    seconds: float
    reference: str

    def error_rate(self, text: str) -> float:
        """WER of `text` against the reference (CER for Mandarin)."""
        if self.language == "zh":
            return float(jiwer.cer(_han(self.reference), _han(text)))
        normalize: Callable[[str], str] = _english if self.language == "en" else _basic
        return float(jiwer.wer(normalize(self.reference), normalize(text)))


def _han(text: str) -> str:
    """The Chinese characters of `text`, in Simplified script (Whisper often writes Traditional)."""
    return "".join(HAN.findall(convert_text(text, ChineseScript.simplified)))


@dataclass(frozen=True)
class Case:
    """Tasks sent together: `long` (if any) first, then `clips` at once."""

    name: str
    clips: list[Clip]
    long: Clip | None = None

    @property
    def tasks(self) -> list[Clip]:
        return [self.long, *self.clips] if self.long else self.clips


@dataclass(frozen=True)
class Outcome:
    """One run of a case: per task (in `Case.tasks` order) its latency, its end and its text."""

    wall: float
    latencies: list[float]
    ends: list[float]
    """Seconds from the start of the run to the task's completion."""
    texts: list[str]

    def shorts_first(self) -> bool:
        """Every task after the first (the long clip) completed before it."""
        return all(end < self.ends[0] for end in self.ends[1:])


def manifest(audio: Path) -> list[Clip]:
    """Every clip MANIFEST.tsv lists, with its reference."""
    with (audio / "MANIFEST.tsv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        Clip(audio / r["file"], r["language"], float(r["seconds"]), (audio / r["reference"]).read_text("utf-8"))
        for r in rows
    ]


def short_clips(clips: list[Clip]) -> list[Clip]:
    """The clips of one window or less with their own reference, the languages taken in turn."""
    seen: set[str] = set()
    by_language: dict[str, list[Clip]] = {language: [] for language in LANGUAGES}
    for clip in clips:
        if clip.language in by_language and clip.seconds < WINDOW_SECONDS and clip.reference not in seen:
            seen.add(clip.reference)
            by_language[clip.language].append(clip)
    return [clip for clip in chain.from_iterable(zip_longest(*by_language.values())) if clip]


def bare(model: WhisperModel, case: Case, batch: int) -> Outcome:
    """(a): the clips one after another in this process, decoding included."""
    start = time.perf_counter()
    texts, ends = [], []
    for clip in case.tasks:
        texts.append(transcribe(model, decode_audio(str(clip.path), sampling_rate=16_000), batch_size=batch))
        ends.append(time.perf_counter() - start)
    return Outcome(wall=ends[-1], latencies=ends, ends=ends, texts=texts)


def through_service(case: Case, cache: Path, env: dict[str, str], warm_up: Path) -> Outcome:
    """(b) or (c): the tasks sent to a fresh `serve`, timed by the tasks' own timestamps."""
    with serving(cache, env, warm_up=warm_up) as http:
        start = datetime.now(UTC)
        ids = [submit(http, case.long.path)] if case.long else []
        with ThreadPoolExecutor(len(case.clips)) as uploads:
            ids += uploads.map(lambda clip: submit(http, clip.path), case.clips)
        tasks = wait_all(http, ids)
    created = [_timestamp(task["created_at"]) for task in tasks]
    finished = [_timestamp(task["finished_at"]) for task in tasks]
    ends = [(end - start).total_seconds() for end in finished]
    return Outcome(
        wall=max(ends),
        latencies=[(end - begin).total_seconds() for begin, end in zip(created, finished, strict=True)],
        ends=ends,
        texts=[task["result"]["text"] for task in tasks],
    )


def _timestamp(value: str) -> datetime:
    """A task's timestamp (UTC, with or without an offset)."""
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def p95(values: list[float]) -> float:
    """95th percentile, interpolated between the closest ranks."""
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def table(cases: list[Case], results: dict[tuple[str, str], Outcome]) -> list[str]:
    """The summary table and the per-clip WER tables, as Markdown lines."""
    lines = [
        "| case | run | tasks | audio s | wall s | x (a) | x (b) | median latency s | p95 latency s "
        "| max WER loss vs (a) | shorts before long |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in cases:
        audio = sum(clip.seconds for clip in case.tasks)
        a, b = results[case.name, "(a)"], results[case.name, "(b)"]
        for run in RUNS:
            outcome = results[case.name, run]
            lines.append(
                f"| {case.name} | {run} | {len(case.tasks)} | {audio:.1f} | {outcome.wall:.1f} "
                f"| {a.wall / outcome.wall:.2f} | {b.wall / outcome.wall:.2f} "
                f"| {statistics.median(outcome.latencies):.1f} | {p95(outcome.latencies):.1f} "
                f"| {wer_gap(case, a, outcome):.3f} "
                f"| {('yes' if outcome.shorts_first() else 'no') if case.long else '-'} |"
            )
    for case in cases:
        lines += ["", f"WER per task, {case.name}:", "", "| task | language | s | (a) | (b) | (c) |"]
        lines.append("| --- | --- | --- | --- | --- | --- |")
        seen: set[Path] = set()
        for i, clip in enumerate(case.tasks):
            name = clip.path.name + (" (again)" if clip.path in seen else "")
            seen.add(clip.path)
            rates = " | ".join(f"{clip.error_rate(results[case.name, run].texts[i]):.3f}" for run in RUNS)
            lines.append(f"| {name} | {clip.language} | {clip.seconds:.1f} | {rates} |")
    return lines


def wer_gap(case: Case, a: Outcome, other: Outcome) -> float:
    """How much worse another run's WER is than (a)'s on its worst task (a clip that got better counts as 0)."""
    return max(
        max(0.0, clip.error_rate(y) - clip.error_rate(x))
        for clip, x, y in zip(case.tasks, a.texts, other.texts, strict=True)
    )


def check(cases: list[Case], results: dict[tuple[str, str], Outcome]) -> str:
    """One line: the issue's targets for (c), each met or not."""
    first = cases[0]
    speedup = results[first.name, "(b)"].wall / results[first.name, "(c)"].wall
    gap = max(wer_gap(case, results[case.name, "(a)"], results[case.name, "(c)"]) for case in cases)
    mixes = [results[case.name, "(c)"].shorts_first() for case in cases if case.long]
    parts = [
        (f"(c) {speedup:.2f}x the throughput of (b) on {first.name} (>= {TARGET_SPEEDUP}x)", speedup >= TARGET_SPEEDUP),
        (f"per-clip WER of (c) at most {WER_BOUND} above (a) on every task (worst {gap:.3f})", gap <= WER_BOUND),
    ]
    if mixes:
        parts.append(("every short clip before the long one in the mix with (c)", all(mixes)))
    verdict = "PASS" if all(ok for _, ok in parts) else "FAIL"
    return f"check: {verdict}: " + "; ".join(f"{text}: {'yes' if ok else 'NO'}" for text, ok in parts)


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, default=AUDIO_DIR)
    parser.add_argument("--model", default="base")
    parser.add_argument("--device", default=settings.device, help="auto, cpu or cuda (default: WHISPER_DEVICE)")
    parser.add_argument("--compute-type", default=settings.compute_type, help="default: WHISPER_COMPUTE_TYPE")
    parser.add_argument("--quick", action="store_true", help="only the 8-clip case")
    args = parser.parse_args()

    clips = manifest(args.audio)
    shorts = short_clips(clips)
    long = next(clip for clip in clips if clip.path.name == LONG_CLIP)
    cases = [Case("8 short", shorts[:8])]
    if not args.quick:
        cases += [Case("16 short", (shorts * 2)[:16]), Case("mix", shorts[:8], long=long)]
    device = resolve_device(args.device)
    compute_type = resolve_compute_type(args.compute_type, device)
    batch = batch_size(settings.batch_size, device)  # (a) past 30 s
    env = {"WHISPER_DEFAULT_MODEL": args.model, "WHISPER_DEVICE": device, "WHISPER_COMPUTE_TYPE": compute_type}
    print(f"model {args.model} on {device} ({compute_type}); (a) batches {batch} windows past 30 s")
    print(f"short clips: {', '.join(clip.path.name for clip in shorts)}")
    print(f"load average at the start: {_load()}")

    model = load_model(args.model, settings.model_dir, device=device, compute_type=compute_type)
    transcribe(model, decode_audio(str(shorts[0].path), sampling_rate=16_000))  # warm-up
    results: dict[tuple[str, str], Outcome] = {}
    for case in cases:
        results[case.name, "(a)"] = bare(model, case, batch)
        _progress(case, "(a)", results)
        for run, run_env in SERVICE_ENV.items():
            results[case.name, run] = through_service(case, settings.model_dir, {**env, **run_env}, shorts[0].path)
            _progress(case, run, results)

    print()
    print("\n".join(table(cases, results)))
    print()
    print(f"load average at the end: {_load()}")
    print(check(cases, results))


def _progress(case: Case, run: str, results: dict[tuple[str, str], Outcome]) -> None:
    print(f"{case.name} {run}: {results[case.name, run].wall:.1f} s", file=sys.stderr, flush=True)


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg()) + f" (1, 5, 15 min; {os.cpu_count()} CPUs)"


if __name__ == "__main__":
    main()

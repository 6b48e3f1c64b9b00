"""Cross-task batching with the real model on real speech: tasks that share a batch get what they get alone, and
one task's stop or failure leaves the others' results intact."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from faster_whisper import decode_audio

from app.errors import LanguageNotInModel, TranscriptionInterrupted
from app.schemas.tasks import DecodeOptions, TaskType
from app.schemas.transcript import Transcript
from tests.audio import clip, reference, wer
from workers import windows
from workers.engine import FasterWhisperEngine, TranscriptionRequest

pytestmark = pytest.mark.model
WAIT = 120.0  # only reached when something is broken


class HeldDecoder:
    """Wraps the scheduler's decode: records each batch's size, and holds the first batch until released, so that
    the tasks submitted meanwhile wait together for the next one."""

    def __init__(self, inner: Callable[[Sequence[windows.Window]], list[windows.Decoded]]) -> None:
        self.inner = inner
        self.sizes: list[int] = []
        self.release = threading.Event()
        self.holding = threading.Event()

    def __call__(self, batch: Sequence[windows.Window]) -> list[windows.Decoded]:
        if not self.sizes:
            self.holding.set()
            assert self.release.wait(WAIT)
        self.sizes.append(len(batch))
        return self.inner(batch)


@pytest.fixture
def engine(real_engine: FasterWhisperEngine) -> Iterator[FasterWhisperEngine]:
    """A batching engine of its own (its own scheduler) over the session's loaded models."""
    made = FasterWhisperEngine(real_engine.pool, batch_size=8, batching=True)
    yield made
    assert made.scheduler is not None
    made.scheduler.close()


def request(**options: Any) -> TranscriptionRequest:
    language = options.pop("language", None)
    return TranscriptionRequest(
        task_id=None,
        model="base",
        task_type=TaskType(options.pop("task_type", "transcribe")),
        language=language,
        options=DecodeOptions.model_validate(options),
    )


def transcribe(
    engine: FasterWhisperEngine, name: str, req: TranscriptionRequest, stop: Callable[[], bool] = lambda: False
) -> Transcript:
    audio = decode_audio(str(clip(name)), sampling_rate=16_000)
    return engine.transcribe(audio, req, on_segment=lambda _: None, should_stop=stop)


def together(
    engine: FasterWhisperEngine, jobs: list[tuple[str, TranscriptionRequest, Callable[[], bool]]]
) -> tuple[list[Future[Transcript]], HeldDecoder]:
    """Start a blocker, then `jobs` in threads while the blocker's batch is held; release once all their windows
    are pending, so that they share batches."""
    scheduler = engine.scheduler
    assert scheduler is not None
    held = HeldDecoder(scheduler.decode)
    scheduler.decode = held
    pool = ThreadPoolExecutor(max_workers=len(jobs) + 1)
    blocker = pool.submit(transcribe, engine, "cards_003.wav", request(language="en"))
    assert held.holding.wait(WAIT)
    futures = [pool.submit(transcribe, engine, name, req, stop) for name, req, stop in jobs]
    expected = len(jobs)  # every clip here is one window (under 30 s)
    pause = threading.Event()
    while scheduler.pending() < expected and not any(f.done() for f in futures):
        pause.wait(0.05)
    held.release.set()
    blocker.result(WAIT)
    pool.shutdown(wait=False)
    return futures, held


def test_tasks_sharing_a_batch_get_exactly_what_they_get_alone(engine: FasterWhisperEngine) -> None:
    """English with a detected language, French with a detected language and Spanish translated to English, with
    word timings: three prompts and three alignments in one forward pass."""
    jobs = [
        ("jfk.wav", request(word_timestamps=True)),
        ("fr_asterisk_invalid.wav", request(word_timestamps=True)),
        ("es_asterisk_ss-noservice.wav", request(task_type="translate", language="es")),
    ]
    alone = [transcribe(engine, name, req) for name, req in jobs]
    futures, held = together(engine, [(name, req, lambda: False) for name, req in jobs])
    shared = [future.result(WAIT) for future in futures]
    assert held.sizes[1] == 3, held.sizes  # the three shared one batch
    assert [t.model_dump() for t in shared] == [t.model_dump() for t in alone]
    assert [t.language for t in shared] == ["en", "fr", "es"]
    assert wer(reference("jfk.wav"), shared[0].text) <= 0.25
    assert shared[0].segments[0].words, "word timestamps were asked for"
    english = "The number you have dialed is out of service. Please check the number and try again."
    assert wer(english, shared[2].text) <= 0.5 and "número" not in shared[2].text.lower(), shared[2].text


def test_a_task_stopped_while_batched_leaves_the_others_intact(engine: FasterWhisperEngine) -> None:
    """A cancel or a lost lease: the stopped task's pending windows are dropped, the other's result is unchanged."""
    alone = transcribe(engine, "jfk.wav", request())
    stop = threading.Event()
    futures, _ = together(
        engine, [("jfk.wav", request(), lambda: False), ("librivox_0870.wav", request(), stop.is_set)]
    )
    stop.set()
    with pytest.raises(TranscriptionInterrupted):
        futures[1].result(WAIT)
    assert futures[0].result(WAIT).model_dump() == alone.model_dump()


def test_a_task_with_a_bad_option_fails_alone(engine: FasterWhisperEngine) -> None:
    """Cantonese on `base` (faster-whisper lists yue, but only large-v3 has its token): a clear error for that task
    (it used to break every batch it joined), the task next to it is unaffected."""
    alone = transcribe(engine, "jfk.wav", request())
    futures, _ = together(
        engine, [("jfk.wav", request(), lambda: False), ("librivox_0880.wav", request(language="yue"), lambda: False)]
    )
    with pytest.raises(LanguageNotInModel, match="no token for language 'yue'"):
        futures[1].result(WAIT)
    assert futures[0].result(WAIT).model_dump() == alone.model_dump()


def test_the_longest_prompt_and_hotwords_the_api_accepts_still_transcribe(engine: FasterWhisperEngine) -> None:
    """2,000 characters of prompt and 1,000 of hotwords (the API's limits): the prompt's oldest words make room."""
    prompt = ("Glossary words for the speech follow here and there, " * 40)[:2000]
    hotwords = ("Americans country fellow " * 50)[:1000]
    transcript = transcribe(engine, "jfk.wav", request(initial_prompt=prompt, hotwords=hotwords))
    # Such a prompt (one phrase, forty times) makes the model repeat itself too, but the speech is all there.
    assert "ask not what your country can do for you" in transcript.text.lower(), transcript.text


def test_pure_silence_gives_no_text(engine: FasterWhisperEngine) -> None:
    """20 s of digital silence (one window, no VAD under 30 s): the model says no speech and writes repeated filler;
    the window is dropped as Whisper's sequential decoder drops such windows."""
    silence = np.zeros(20 * 16_000, dtype=np.float32)
    transcript = engine.transcribe(
        silence, request(word_timestamps=True), on_segment=lambda _: None, should_stop=lambda: False
    )
    assert transcript.text == "" and transcript.segments == [], transcript.text


def test_long_audio_is_cut_into_vad_windows_that_batch_and_come_back_in_order(engine: FasterWhisperEngine) -> None:
    transcript = transcribe(engine, "long_en.flac", request())
    assert wer(reference("long_en.flac"), transcript.text) <= 0.10
    starts = [segment.start for segment in transcript.segments]
    assert starts == sorted(starts) and transcript.segments[-1].end <= transcript.duration

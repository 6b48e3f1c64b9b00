"""The batch scheduler with a recording decode function: who shares a batch, in what order, and what one job's
failure or cancellation does to the others."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from app.errors import TranscriptionInterrupted
from workers.batching import BatchScheduler, Job

WAIT = 30.0  # generous: only reached when something is broken


@dataclass(frozen=True)
class W:
    """A window: its name, and whether decoding it fails."""

    name: str
    bad: bool = False


class Recorder:
    """Decodes windows to their names in upper case, records every batch, and can hold the decoders at a gate."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self.lock = threading.Lock()

    def __call__(self, windows: Sequence[W]) -> list[str]:
        self.entered.release()
        assert self.gate.wait(WAIT)
        with self.lock:
            self.batches.append([w.name for w in windows])
        if any(w.bad for w in windows):
            raise ValueError("bad window")
        return [w.name.upper() for w in windows]

    def hold(self) -> None:
        self.gate.clear()

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=WAIT), "no batch started"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def scheduler(recorder: Recorder) -> Iterator[BatchScheduler[W, str]]:
    made = BatchScheduler(recorder, batch_size=4)
    yield made
    recorder.gate.set()
    made.close()


def job(*names: str, group: str = "g", priority: int = 1) -> Job[W, str]:
    return Job([W(n, bad=n.startswith("bad")) for n in names], group=group, priority=priority)


def results(j: Job[W, str]) -> list[str]:
    return list(j.results(lambda: False))


def busy(scheduler: BatchScheduler[W, str], recorder: Recorder) -> Job[W, str]:
    """Hold the decoder inside a first batch, so that what is submitted next waits together for the next one."""
    recorder.hold()
    first = scheduler.submit(job("first"))
    recorder.wait_entered()
    return first


def test_a_lone_job_is_decoded_at_once_without_waiting_for_a_full_batch(
    scheduler: BatchScheduler[W, str], recorder: Recorder
) -> None:
    assert results(scheduler.submit(job("a"))) == ["A"]
    assert recorder.batches == [["a"]]


def test_jobs_arriving_while_a_batch_runs_share_the_next_one(
    scheduler: BatchScheduler[W, str], recorder: Recorder
) -> None:
    first = busy(scheduler, recorder)
    jobs = [scheduler.submit(job(name)) for name in ("a", "b", "c")]
    recorder.gate.set()
    assert [results(j) for j in jobs] == [["A"], ["B"], ["C"]]
    assert results(first) == ["FIRST"]
    assert recorder.batches == [["first"], ["a", "b", "c"]]


def test_a_batch_holds_at_most_batch_size_windows(scheduler: BatchScheduler[W, str], recorder: Recorder) -> None:
    big = scheduler.submit(job(*"abcdefghij"))
    assert results(big) == list("ABCDEFGHIJ")
    assert all(len(batch) <= 4 for batch in recorder.batches)
    assert [name for batch in recorder.batches for name in batch] == list("abcdefghij")


def test_high_priority_windows_go_first(scheduler: BatchScheduler[W, str], recorder: Recorder) -> None:
    first = busy(scheduler, recorder)
    low = scheduler.submit(job("low1", "low2", priority=2))
    normal = scheduler.submit(job("normal1", "normal2", "normal3", priority=1))
    high = scheduler.submit(job("high1", "high2", priority=0))
    recorder.gate.set()
    for j in (first, low, normal, high):
        results(j)
    assert recorder.batches[1] == ["high1", "high2", "normal1", "normal2"]
    assert recorder.batches[2:] == [["normal3", "low1", "low2"]]


def test_a_long_job_takes_turns_with_short_ones_instead_of_going_first(
    scheduler: BatchScheduler[W, str], recorder: Recorder
) -> None:
    first = busy(scheduler, recorder)
    long = scheduler.submit(job(*(f"long{i}" for i in range(8))))
    short = scheduler.submit(job("short"))
    recorder.gate.set()
    assert results(short) == ["SHORT"]
    results(long), results(first)
    assert recorder.batches[1] == ["long0", "short", "long1", "long2"]


def test_windows_of_different_groups_never_share_a_batch(scheduler: BatchScheduler[W, str], recorder: Recorder) -> None:
    first = busy(scheduler, recorder)
    beam5 = scheduler.submit(job("a", "b", group="beam5"))
    beam1 = scheduler.submit(job("c", group="beam1"))
    more5 = scheduler.submit(job("d", group="beam5"))
    recorder.gate.set()
    for j in (first, beam5, beam1, more5):
        results(j)
    assert recorder.batches[1:] == [["a", "d", "b"], ["c"]]  # jobs take turns window by window


def test_a_failing_window_fails_its_own_job_only(scheduler: BatchScheduler[W, str], recorder: Recorder) -> None:
    first = busy(scheduler, recorder)
    good = scheduler.submit(job("good1", "good2"))
    bad = scheduler.submit(job("bad"))
    recorder.gate.set()
    assert results(good) == ["GOOD1", "GOOD2"]
    with pytest.raises(ValueError, match="bad window"):
        results(bad)
    results(first)
    # The shared batch failed, then each window was decoded alone.
    assert recorder.batches[1:] == [["good1", "bad", "good2"], ["good1"], ["bad"], ["good2"]]


def test_a_stopped_job_withdraws_its_pending_windows_and_the_others_finish(
    scheduler: BatchScheduler[W, str], recorder: Recorder
) -> None:
    """What a cancelled task or a lost lease does: its owner's stop check turns true."""
    first = busy(scheduler, recorder)
    stopped = scheduler.submit(job("s1", "s2", "s3"))
    kept = scheduler.submit(job("k1", "k2"))
    with pytest.raises(TranscriptionInterrupted):
        list(stopped.results(lambda: True))
    recorder.gate.set()
    assert results(kept) == ["K1", "K2"]
    results(first)
    decoded = [name for batch in recorder.batches for name in batch]
    assert decoded == ["first", "k1", "k2"]


def test_results_come_window_by_window_as_batches_finish(recorder: Recorder) -> None:
    scheduler: BatchScheduler[W, str] = BatchScheduler(recorder, batch_size=1)
    try:
        recorder.hold()
        two = scheduler.submit(job("a", "b"))
        stream = two.results(lambda: False)
        recorder.gate.set()
        assert next(stream) == "A"
        assert next(stream) == "B"
    finally:
        scheduler.close()


def test_each_decode_thread_runs_its_own_batch_at_the_same_time(recorder: Recorder) -> None:
    """One decode thread per model replica (device): two batches are in flight at once."""
    scheduler: BatchScheduler[W, str] = BatchScheduler(recorder, batch_size=1, threads=2)
    try:
        recorder.hold()
        jobs = [scheduler.submit(job(name)) for name in ("a", "b")]
        recorder.wait_entered()
        recorder.wait_entered()  # both threads are inside decode before either may leave
        recorder.gate.set()
        assert [results(j) for j in jobs] == [["A"], ["B"]]
    finally:
        scheduler.close()


def test_closing_fails_the_waiting_jobs_instead_of_leaving_them_hanging(recorder: Recorder) -> None:
    scheduler: BatchScheduler[W, str] = BatchScheduler(recorder, batch_size=1)
    first = busy(scheduler, recorder)
    waiting = scheduler.submit(job("w"))
    closer = threading.Thread(target=scheduler.close)
    closer.start()
    with pytest.raises(TranscriptionInterrupted):
        results(waiting)
    recorder.gate.set()
    closer.join(WAIT)
    assert results(first) == ["FIRST"]
    with pytest.raises(RuntimeError, match="closed"):
        scheduler.submit(job("late"))


def test_one_job_puts_at_most_its_share_of_windows_in_a_batch(recorder: Recorder) -> None:
    """job_share 2 of 4: a long job alone takes two windows per batch, so a short job arriving meanwhile is done in
    the next batch while the long one still has windows to go."""
    scheduler: BatchScheduler[W, str] = BatchScheduler(recorder, batch_size=4, job_share=2)
    try:
        recorder.hold()
        long = scheduler.submit(job(*(f"long{i}" for i in range(6))))
        recorder.wait_entered()
        short = scheduler.submit(job("short"))
        recorder.gate.set()
        assert results(short) == ["SHORT"] and results(long) == [f"LONG{i}" for i in range(6)]
        assert recorder.batches == [["long0", "long1"], ["short", "long2", "long3"], ["long4", "long5"]]
    finally:
        scheduler.close()

"""Continuous batching: the windows of every running task share each forward pass.

Task threads submit a `Job` (one task's windows); decode threads, one per model replica, take the most urgent
pending windows that can share a forward pass (same group: same model and the generation options CTranslate2 needs
equal) and decode up to `batch_size` of them at once. A batch starts as soon as a decode thread is free, with whatever
is pending: a lone task never waits for company, and windows of tasks that arrive meanwhile join the next batch.

Order: priority first (high before normal before low), then each job's window number, then arrival. Jobs of one
priority therefore take turns window by window, and one job puts at most `job_share` windows in a batch, so a long
task cannot hold short ones back until it ends: a short task that arrives while a long one runs joins the next batch
and is done before the long task's later windows.
A failing batch is decoded again window by window, so that one task's failure never fails the others.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from app.errors import TranscriptionInterrupted

log = logging.getLogger(__name__)

W = TypeVar("W")
"""A window: whatever the decode function needs for one item of a batch."""
R = TypeVar("R")
"""What decoding one window gives."""

POLL_SECONDS = 0.05
"""How often a job's owner checks its stop flag while waiting for results."""


class Job(Generic[W, R]):
    """One task's windows, their results as they come, and whether its owner still wants them."""

    def __init__(self, windows: Sequence[W], *, group: Hashable, priority: int = 1) -> None:
        self.windows = list(windows)
        self.group = group
        self.priority = priority
        self._results: list[R | None] = [None] * len(self.windows)
        self._done = [False] * len(self.windows)
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self.cancelled = False

    def results(self, should_stop: Callable[[], bool]) -> Iterator[R]:
        """Each window's result in window order, as soon as it and those before it are decoded.

        Raises the first window's error, or TranscriptionInterrupted (after withdrawing the job's pending windows)
        once `should_stop()` turns true.
        """
        for index in range(len(self.windows)):
            with self._changed:
                while True:
                    if should_stop():
                        self.cancelled = True
                        raise TranscriptionInterrupted()
                    if self._done[index] or self._error is not None:
                        break
                    self._changed.wait(POLL_SECONDS)
                if self._error is not None:
                    raise self._error
                result = self._results[index]
            yield result  # type: ignore[misc]  # set together with _done

    def _deliver(self, index: int, result: R) -> None:
        with self._changed:
            self._results[index] = result
            self._done[index] = True
            self._changed.notify_all()

    def _fail(self, error: BaseException) -> None:
        with self._changed:
            self._error = self._error or error
            self.cancelled = True  # its other windows are not worth decoding
            self._changed.notify_all()


@dataclass(order=True)
class _Pending(Generic[W, R]):
    priority: int
    index: int
    arrival: int
    job: Job[W, R] = field(compare=False)


class BatchScheduler(Generic[W, R]):
    """Pending windows of all jobs and the threads that decode them in batches.

    `decode(windows)` decodes windows of one group together and returns one result per window, in order; it runs in
    the decode threads (`threads` of them: one per model replica, so that each batch has a replica to itself).
    """

    def __init__(
        self,
        decode: Callable[[Sequence[W]], Sequence[R]],
        *,
        batch_size: int,
        threads: int = 1,
        job_share: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if batch_size < 1 or threads < 1 or (job_share is not None and job_share < 1):
            raise ValueError("batch_size, threads and job_share must be at least 1")
        self.decode = decode
        self.batch_size = batch_size
        self.job_share = job_share or batch_size
        self.on_batch = on_batch
        self._pending: list[_Pending[W, R]] = []
        self._arrivals = itertools.count()
        self._wake = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._decode_loop, name=f"batch-decoder-{n}", daemon=True) for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Job[W, R]) -> Job[W, R]:
        """Queue the job's windows; they join the next batch a decode thread forms."""
        with self._wake:
            if self._closed:
                raise RuntimeError("the batch scheduler is closed")
            arrival = next(self._arrivals)
            self._pending.extend(_Pending(job.priority, index, arrival, job) for index in range(len(job.windows)))
            self._pending.sort()
            self._wake.notify_all()
        return job

    def pending(self) -> int:
        """Windows waiting for a batch (cancelled jobs' included until a decode thread drops them)."""
        with self._wake:
            return len(self._pending)

    def close(self) -> None:
        """Stop the decode threads once their current batch is done; pending windows are dropped."""
        with self._wake:
            self._closed = True
            for entry in self._pending:
                entry.job._fail(TranscriptionInterrupted())
            self._pending.clear()
            self._wake.notify_all()
        for thread in self._threads:
            thread.join()

    def _next_batch(self) -> list[_Pending[W, R]] | None:
        """The most urgent pending window and up to batch_size - 1 more of its group, in order and at most job_share
        of one job; None once closed."""
        with self._wake:
            while True:
                self._pending = [entry for entry in self._pending if not entry.job.cancelled]
                if self._closed:
                    return None
                if self._pending:
                    break
                self._wake.wait()
            group = self._pending[0].job.group
            batch: list[_Pending[W, R]] = []
            per_job: dict[int, int] = {}
            for entry in self._pending:
                if len(batch) == self.batch_size:
                    break
                if entry.job.group == group and per_job.get(id(entry.job), 0) < self.job_share:
                    batch.append(entry)
                    per_job[id(entry.job)] = per_job.get(id(entry.job), 0) + 1
            taken = {id(entry) for entry in batch}
            self._pending = [entry for entry in self._pending if id(entry) not in taken]
            return batch

    def _decode_loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run(batch)
            del batch  # waiting for the next batch must not keep this one's windows (and their model) alive

    def _run(self, batch: list[_Pending[W, R]]) -> None:
        if self.on_batch is not None:
            self.on_batch(len(batch))
        try:
            results = self._decode(batch)
        except BaseException as exc:  # delivered to the batch's jobs, never lost with the thread
            for entry in batch:
                entry.job._fail(exc)
            return
        for entry, result in zip(batch, results, strict=True):
            entry.job._deliver(entry.index, result)

    def _decode(self, batch: list[_Pending[W, R]]) -> list[R]:
        """Decode the batch; if it fails, each window alone, failing only the jobs whose own window fails."""
        windows = [entry.job.windows[entry.index] for entry in batch]
        try:
            return list(self.decode(windows))
        except Exception:
            if len(batch) == 1:
                raise
            log.warning("a batch of %d windows failed; decoding them one by one", len(batch), exc_info=True)
        results: list[R] = []
        for entry, window in zip(batch, windows, strict=True):
            try:
                results.extend(self.decode([window]))
            except Exception as exc:
                entry.job._fail(exc)
                results.append(None)  # type: ignore[arg-type]  # its job failed: never read
        return results

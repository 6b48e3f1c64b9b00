"""The worker: claim tasks, run them with a heartbeat, record the outcome under the lease."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import logs
from app.db.models import Task
from app.db.retry import is_transient
from app.errors import AppError, LeaseLost, TaskCancelled, TaskDeleted, TranscriptionInterrupted
from app.schemas.tasks import DecodeOptions, TaskStatus, TaskType
from app.schemas.transcript import Segment, Transcript
from app.services import media, queue, retention, workers
from app.services import tasks as task_service
from app.services.queue import Lease
from app.services.webhooks import WebhookDispatcher
from app.settings import Settings
from workers.diarization import Diarizer
from workers.engine import TranscriptionEngine, TranscriptionRequest
from workers.fetch import fetched_media
from workers.models import resolve_device
from workers.postprocess import postprocess

log = logging.getLogger(__name__)
T = TypeVar("T")

PROGRESS_SECONDS = 1.0
"""How often progress is written while a task runs."""


def new_worker_id(name: str = "") -> str:
    """name-or-host:pid:random, unique across restarts."""
    return f"{name or socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class _Run:
    """Shared between the event loop and the engine thread for one task."""

    lease: Lease
    duration: float | None
    callback_url: str | None
    keep_seconds: int | None  # the task's delete_after_seconds
    stop: threading.Event = field(default_factory=threading.Event)
    stop_reason: type[Exception] | None = None
    segments: list[Segment] = field(default_factory=list)  # appended by the engine thread
    reported: int = 0  # how many of them are stored

    def interrupt(self, reason: type[Exception]) -> None:
        self.stop_reason = self.stop_reason or reason
        self.stop.set()

    def progress(self) -> int:
        if not self.duration or not self.segments:
            return 0
        return min(99, int(100 * self.segments[-1].end / self.duration))


class _Shutdown(Exception):
    """The worker is stopping and gives the task back."""


class Worker:
    """Runs up to `concurrency` tasks at once until told to stop (WHISPER_WORKER_CONCURRENCY, or what the engine
    suggests: enough to keep its batches full)."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        engine: TranscriptionEngine,
        settings: Settings,
        worker_id: str | None = None,
        diarizer: Diarizer | None = None,
    ) -> None:
        self.sessions = sessions
        self.engine = engine
        self.settings = settings
        self.diarizer = diarizer or Diarizer(device=resolve_device(settings.device), threads=settings.cpu_threads)
        self.worker_id = worker_id or new_worker_id(settings.worker_name)
        self.concurrency = settings.worker_concurrency or engine.describe().default_concurrency
        # Each running task holds a thread while the engine decodes it (waiting for its batches, with batching):
        # the event loop's default executor (cores + 4 threads) would keep tasks past it from even starting.
        self._threads = ThreadPoolExecutor(max_workers=self.concurrency + 4, thread_name_prefix="task")
        self._runs: dict[str, _Run] = {}
        self.abandoned_work = False
        """Set when shutdown gave tasks back whose threads may still be busy: the process should exit at once."""

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and execute tasks until `stop` is set; then finish within the grace period or give tasks back."""
        logs.worker_id.set(self.worker_id)  # this task's context, inherited by every task it starts
        log.info("worker %s started (concurrency %d)", self.worker_id, self.concurrency)
        await self._register()
        housekeeping = asyncio.create_task(self._housekeeping(stop))
        webhooks = asyncio.create_task(WebhookDispatcher(sessions=self.sessions, settings=self.settings).run(stop))
        running: set[asyncio.Task[None]] = set()
        stop_waiter = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                free = self.concurrency - len(running)
                claimed = await self._claim(free) if free > 0 else []
                for task in claimed:
                    running.add(asyncio.create_task(self._execute(task)))
                if claimed and len(running) < self.concurrency:
                    continue  # more may be waiting
                done, _ = await asyncio.wait(
                    [*running, stop_waiter], timeout=self.settings.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                running -= done
        finally:
            stop_waiter.cancel()
            housekeeping.cancel()
            # The dispatcher stops on the same event; give it its current delivery's timeout, while the grace
            # period of the running tasks runs alongside.
            await asyncio.gather(
                asyncio.wait([webhooks], timeout=self.settings.webhook_timeout_seconds + 1), self._wind_down(running)
            )
            webhooks.cancel()
            # Nothing this worker started may outlive it: a task cancelled but never awaited can be left inside a
            # database call whose connection is gone by the time the event loop closes, and hang that close.
            await asyncio.gather(stop_waiter, housekeeping, webhooks, return_exceptions=True)
            await self._mark_stopped()
            self._threads.shutdown(wait=False)  # threads of abandoned work end with the process
            log.info("worker %s stopped", self.worker_id)

    async def _wind_down(self, running: set[asyncio.Task[None]]) -> None:
        """Let running tasks finish within the grace period, then give the others back to the queue at once.

        The leases are released from here rather than by the tasks: an engine thread inside a C call (a CTranslate2
        batch) cannot be interrupted, and the process must be able to exit without waiting for it.
        """
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=self.settings.shutdown_grace_seconds)
        if not pending:
            return
        left = list(self._runs.values())
        for run in left:
            run.interrupt(_Shutdown)  # engines that can stop, stop; the others are abandoned with their threads
        for task in pending:
            task.cancel()
        await asyncio.wait(pending)
        self.abandoned_work = True
        await asyncio.gather(*(self._give_back(run) for run in left))

    async def _in_thread(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`asyncio.to_thread` on the worker's own threads (the caller's context vars go along: log lines)."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    async def _give_back(self, run: _Run) -> None:
        """Requeue a task this worker stops running; the attempt does not count."""
        try:
            logs.task_id.set(run.lease.task_id)  # this gather child's own context: its lines name the task
            async with self.sessions() as session:
                if await queue.release(session=session, lease=run.lease):
                    log.info("task %s: given back to the queue (shutdown)", run.lease.task_id)
        except Exception:
            log.exception("task %s: giving it back failed; it is requeued once its lease expires", run.lease.task_id)

    async def _claim(self, limit: int) -> list[Task]:
        try:
            async with self.sessions() as session:
                return await queue.claim(
                    session=session, worker_id=self.worker_id, lease_seconds=self.settings.lease_seconds, limit=limit
                )
        except Exception:
            log.exception("claiming tasks failed; retrying")
            return []

    async def _register(self) -> None:
        info = self.engine.describe()
        async with self.sessions() as session:
            await workers.register(
                session=session,
                info=workers.WorkerInfo(
                    id=self.worker_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    device=info.device,
                    device_index=info.device_index,
                    compute_type=info.compute_type,
                    concurrency=self.concurrency,
                ),
            )

    async def _mark_stopped(self) -> None:
        try:
            async with self.sessions() as session:
                await workers.mark_stopped(session=session, worker_id=self.worker_id)
        except Exception:
            log.exception("worker %s: recording the stop failed", self.worker_id)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        """Every `reap_seconds`: requeue expired leases (anyone's), delete tasks past their retention (when it is
        this worker's turn, for at most half the period), unload idle models, refresh this worker's record. Each
        step fails alone: a broken one never stops the others."""
        while not stop.is_set():
            try:
                async with self.sessions() as session:
                    if count := await queue.reap_expired(session=session):
                        log.warning("requeued or failed %d tasks whose lease expired", count)
            except Exception:
                log.exception("requeuing expired leases failed; retrying")
            try:
                async with self.sessions() as session:
                    purged = await retention.purge(
                        session=session,
                        holder=self.worker_id,
                        retention_seconds=self.settings.retention_seconds,
                        lease_seconds=self.settings.lease_seconds,
                        budget_seconds=self.settings.reap_seconds / 2,
                    )
                if purged:
                    log.info("deleted %d finished tasks past their retention", purged)
            except Exception:
                log.exception("deleting tasks past their retention failed; retrying")
            try:
                await self._in_thread(self.engine.unload_idle)
            except Exception:
                log.exception("unloading idle models failed; retrying")
            try:
                async with self.sessions() as session:
                    await workers.report(
                        session=session,
                        worker_id=self.worker_id,
                        running=sorted(self._runs),
                        models=self.engine.describe().models,
                    )
            except Exception:
                log.exception("refreshing this worker's record failed; retrying")
            await asyncio.sleep(self.settings.reap_seconds)

    async def _execute(self, task: Task) -> None:
        assert task.lease_token is not None
        logs.task_id.set(task.id)  # this asyncio task's own context: its lines, threads and reporter carry the id
        run = _Run(Lease(task.id, task.lease_token), task.media_duration, task.callback_url, task.delete_after_seconds)
        self._runs[task.id] = run
        started = time.monotonic()
        reporter = asyncio.create_task(self._report(run))
        log.info("task %s: started (attempt %d, model %s)", task.id, task.attempts, task.model)
        try:
            fetched = await self._fetch(task, run)
            request = TranscriptionRequest(
                task_id=task.id,
                model=task.model,
                task_type=TaskType(task.task_type),
                language=task.language,
                options=DecodeOptions.model_validate(task.options),
                priority=task.priority,
            )
            reusable = await self._reusable(task) if request.options.dedupe else None
            if reusable:
                reused_from, transcript = reusable
            else:
                reused_from = None
                audio = await self._load_audio(task, run, fetched)
                run.duration = len(audio) / media.SAMPLE_RATE
                transcript = await self._in_thread(
                    self.engine.transcribe,
                    audio,
                    request,
                    on_segment=run.segments.append,
                    should_stop=run.stop.is_set,
                )
                if run.stop.is_set():
                    raise TranscriptionInterrupted()
                transcript = await self._in_thread(postprocess, transcript, audio, request.options, self.diarizer)
            async with self.sessions() as session:
                done = await queue.complete(
                    session=session,
                    lease=run.lease,
                    transcript=transcript,
                    processing_seconds=time.monotonic() - started,
                    callback_url=run.callback_url,
                    keep_seconds=run.keep_seconds,
                    reused_from=reused_from,
                )
            if done is TaskStatus.completed:
                log.info("task %s: completed%s", task.id, f" with the result of {reused_from}" if reused_from else "")
            elif done is TaskStatus.cancelled:
                log.info("task %s: cancelled as it finished; result discarded", task.id)
            else:
                await self._lost(run, "result discarded")
        except TranscriptionInterrupted:
            await self._interrupted(run, time.monotonic() - started)
        except AppError as exc:
            await self._finish(run, TaskStatus.failed, exc.type_name, exc.detail, time.monotonic() - started)
        except Exception as exc:
            if is_transient(exc):
                # The database stayed unreachable longer than the queue layer retries: not the task's fault.
                # Leave it to its lease; the reaper requeues it once the lease expires.
                log.error("task %s: database unavailable (%s); it will be requeued", task.id, exc)
            else:
                log.exception("task %s: failed", task.id)
                message = str(exc) or type(exc).__name__
                await self._finish(run, TaskStatus.failed, type(exc).__name__, message, time.monotonic() - started)
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            self._runs.pop(task.id, None)

    async def _interrupted(self, run: _Run, elapsed: float) -> None:
        if run.stop_reason is TaskCancelled:
            await self._finish(run, TaskStatus.cancelled, None, None, elapsed)
        elif run.stop_reason is TaskDeleted:  # the owner's action, not a fault
            log.info("task %s: stopped, the task was deleted", run.lease.task_id)
        elif run.stop_reason is not _Shutdown:  # shutdown gives the task back itself (_wind_down)
            log.warning("task %s: stopped, lease lost", run.lease.task_id)

    async def _finish(
        self, run: _Run, status: TaskStatus, error_type: str | None, message: str | None, elapsed: float
    ) -> None:
        try:
            async with self.sessions() as session:
                recorded = await queue.finish_unsuccessfully(
                    session=session,
                    lease=run.lease,
                    status=status,
                    error_type=error_type,
                    message=message,
                    processing_seconds=elapsed,
                    callback_url=run.callback_url,
                    keep_seconds=run.keep_seconds,
                )
        except Exception:
            log.exception("task %s: recording the outcome failed; the lease will expire", run.lease.task_id)
            return
        if recorded:
            log.info("task %s: %s%s", run.lease.task_id, status.value, f" with {error_type}" if error_type else "")
        else:
            await self._lost(run, f"outcome ({status.value}{f' with {error_type}' if error_type else ''}) discarded")

    async def _lost(self, run: _Run, discarded: str) -> None:
        """Log why a task's outcome could not be recorded: its owner deleted it (normal, INFO; its media may have
        gone mid-read) or its lease went to another worker (WARNING)."""
        try:
            async with self.sessions() as session:
                deleted = await queue.was_deleted(session=session, lease=run.lease)
        except Exception:
            deleted = False
        if deleted:
            log.info("task %s: stopped, the task was deleted; %s", run.lease.task_id, discarded)
        else:
            log.warning("task %s: stopped, lease lost; %s", run.lease.task_id, discarded)

    async def _report(self, run: _Run) -> None:
        """About every second, store progress and new segments, or else check for a cancel (a read); extend the
        lease every heartbeat; stop if cancelled or lost."""
        last_beat = time.monotonic()
        while not run.stop.is_set():
            await asyncio.sleep(PROGRESS_SECONDS)
            new = run.segments[run.reported :]
            try:
                async with self.sessions() as session:
                    if not new and time.monotonic() - last_beat < self.settings.heartbeat_seconds:
                        await queue.check_held(session=session, lease=run.lease)
                        continue
                    await queue.heartbeat(
                        session=session,
                        lease=run.lease,
                        lease_seconds=self.settings.lease_seconds,
                        progress=run.progress(),
                        segments=new,
                    )
                last_beat, run.reported = time.monotonic(), run.reported + len(new)
            except LeaseLost as exc:
                run.interrupt(type(exc))
            except Exception:
                log.exception("task %s: heartbeat failed; retrying", run.lease.task_id)

    async def _reusable(self, task: Task) -> tuple[str, Transcript] | None:
        """An identical task of the same owner that completed meanwhile (or before a URL task's media was known)."""
        if not task.content_hash:
            return None
        async with self.sessions() as session:
            return await task_service.reusable_for(session=session, owner=task.owner, key=task.content_hash)

    async def _load_audio(self, task: Task, run: _Run, fetched: bytes | None) -> np.ndarray:
        """The task's audio as samples: the media just fetched, else what the database holds."""
        if fetched is None:
            async with self.sessions() as session:
                fetched = await media.load_media(session=session, task_id=task.id)
        if run.stop.is_set():
            raise TranscriptionInterrupted()
        return await self._in_thread(media.decode_pcm, fetched)

    async def _fetch(self, task: Task, run: _Run) -> bytes | None:
        """A URL or page task's media, fetched (workers/fetch.py), stored for retries and returned as stored;
        None when there is nothing to fetch (an upload, or a retry of a task whose media is stored)."""
        if task.source == "upload":
            return None
        async with self.sessions() as session:
            if await media.has_media(session=session, task_id=task.id):
                return None
        assert task.source_url is not None
        meta: dict[str, Any] = dict(task.source_meta or {})
        async with fetched_media(
            task.source_url, page=task.source == "platform", meta=meta, settings=self.settings, stop=run.stop
        ) as decoded:
            key = task_service.content_key(
                decoded.sha256, task_type=task.task_type, model=task.model, language=task.language, options=task.options
            )
            async with self.sessions() as session:
                if not await queue.attach_media(
                    session=session, lease=run.lease, audio=decoded, source_meta=meta or None, content_hash=key
                ):
                    run.interrupt(LeaseLost)
                    raise TranscriptionInterrupted()
            task.content_hash = key  # the claimed row (detached) now matches the database
            return await self._in_thread(decoded.path.read_bytes)

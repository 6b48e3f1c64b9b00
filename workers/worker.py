"""The worker: claim tasks, run them with a heartbeat, record the outcome under the lease."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import logs
from app.db.models import Task
from app.db.retry import is_transient
from app.errors import AppError, LeaseLost, TaskCancelled
from app.schemas.tasks import DecodeOptions, TaskStatus, TaskType
from app.schemas.transcript import Segment, Transcript
from app.services import media, queue, workers
from app.services import tasks as task_service
from app.services.outbound import resolve_checked, resolve_checked_sync
from app.services.queue import Lease
from app.services.webhooks import WebhookDispatcher
from app.settings import Settings
from crawlers.direct import PageNotMedia, download
from crawlers.ytdlp import fetch_page
from workers.diarization import Diarizer
from workers.engine import TranscriptionEngine, TranscriptionInterrupted, TranscriptionRequest
from workers.models import resolve_device
from workers.postprocess import postprocess

log = logging.getLogger(__name__)

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
    """Runs up to `settings.worker_concurrency` tasks at once until told to stop."""

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
        self._runs: dict[str, _Run] = {}

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and execute tasks until `stop` is set; then finish within the grace period or give tasks back."""
        logs.worker_id.set(self.worker_id)  # this task's context, inherited by every task it starts
        log.info("worker %s started (concurrency %d)", self.worker_id, self.settings.worker_concurrency)
        await self._register()
        housekeeping = asyncio.create_task(self._housekeeping(stop))
        webhooks = asyncio.create_task(WebhookDispatcher(sessions=self.sessions, settings=self.settings).run(stop))
        running: set[asyncio.Task[None]] = set()
        stop_waiter = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                free = self.settings.worker_concurrency - len(running)
                claimed = await self._claim(free) if free > 0 else []
                for task in claimed:
                    running.add(asyncio.create_task(self._execute(task)))
                if claimed and len(running) < self.settings.worker_concurrency:
                    continue  # more may be waiting
                done, _ = await asyncio.wait(
                    [*running, stop_waiter], timeout=self.settings.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                running -= done
        finally:
            stop_waiter.cancel()
            housekeeping.cancel()
            # The dispatcher stops on the same event; give it its current delivery's timeout.
            await asyncio.wait([webhooks], timeout=self.settings.webhook_timeout_seconds + 1)
            webhooks.cancel()
            if running:
                _, pending = await asyncio.wait(running, timeout=self.settings.shutdown_grace_seconds)
                for run in self._runs.values():
                    run.interrupt(_Shutdown)
                if pending:
                    await asyncio.wait(pending)
            await self._mark_stopped()
            log.info("worker %s stopped", self.worker_id)

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
                    concurrency=self.settings.worker_concurrency,
                ),
            )

    async def _mark_stopped(self) -> None:
        try:
            async with self.sessions() as session:
                await workers.mark_stopped(session=session, worker_id=self.worker_id)
        except Exception:
            log.exception("worker %s: recording the stop failed", self.worker_id)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        """Every `reap_seconds`: requeue expired leases (anyone's), unload idle models, refresh this worker's
        record. Each step fails alone: a broken one never stops the others."""
        while not stop.is_set():
            try:
                async with self.sessions() as session:
                    if count := await queue.reap_expired(session=session):
                        log.warning("requeued or failed %d tasks whose lease expired", count)
            except Exception:
                log.exception("requeuing expired leases failed; retrying")
            try:
                await asyncio.to_thread(self.engine.unload_idle)
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
        run = _Run(Lease(task.id, task.lease_token), task.media_duration, task.callback_url)
        self._runs[task.id] = run
        started = time.monotonic()
        reporter = asyncio.create_task(self._report(run))
        log.info("task %s: started (attempt %d, model %s)", task.id, task.attempts, task.model)
        try:
            audio = await self._load_audio(task, run)
            run.duration = len(audio) / media.SAMPLE_RATE
            request = TranscriptionRequest(
                task_id=task.id,
                model=task.model,
                task_type=TaskType(task.task_type),
                language=task.language,
                options=DecodeOptions.model_validate(task.options),
            )
            reusable = await self._reusable(task) if request.options.dedupe else None
            if reusable:
                reused_from, transcript = reusable
            else:
                reused_from = None
                transcript = await asyncio.to_thread(
                    self.engine.transcribe,
                    audio,
                    request,
                    on_segment=run.segments.append,
                    should_stop=run.stop.is_set,
                )
                if run.stop.is_set():
                    raise TranscriptionInterrupted()
                transcript = await asyncio.to_thread(postprocess, transcript, audio, request.options, self.diarizer)
            async with self.sessions() as session:
                done = await queue.complete(
                    session=session,
                    lease=run.lease,
                    transcript=transcript,
                    processing_seconds=time.monotonic() - started,
                    callback_url=run.callback_url,
                    reused_from=reused_from,
                )
            if done:
                log.info("task %s: completed%s", task.id, f" with the result of {reused_from}" if reused_from else "")
            else:
                log.warning("task %s: finished, but the lease was lost; result discarded", task.id)
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
            self._runs.pop(task.id, None)

    async def _interrupted(self, run: _Run, elapsed: float) -> None:
        if run.stop_reason is TaskCancelled:
            await self._finish(run, TaskStatus.cancelled, None, None, elapsed)
        elif run.stop_reason is _Shutdown:
            async with self.sessions() as session:
                await queue.release(session=session, lease=run.lease)
            log.info("task %s: given back to the queue (shutdown)", run.lease.task_id)
        else:
            log.warning("task %s: stopped, lease lost", run.lease.task_id)

    async def _finish(
        self, run: _Run, status: TaskStatus, error_type: str | None, message: str | None, elapsed: float
    ) -> None:
        log.info("task %s: %s%s", run.lease.task_id, status.value, f" with {error_type}" if error_type else "")
        try:
            async with self.sessions() as session:
                await queue.finish_unsuccessfully(
                    session=session,
                    lease=run.lease,
                    status=status,
                    error_type=error_type,
                    message=message,
                    processing_seconds=elapsed,
                    callback_url=run.callback_url,
                )
        except Exception:
            log.exception("task %s: recording the outcome failed; the lease will expire", run.lease.task_id)

    async def _report(self, run: _Run) -> None:
        """About every second, store progress and new segments; extend the lease every heartbeat; stop if lost."""
        last_beat = time.monotonic()
        while not run.stop.is_set():
            await asyncio.sleep(PROGRESS_SECONDS)
            new = run.segments[run.reported :]
            if not new and time.monotonic() - last_beat < self.settings.heartbeat_seconds:
                continue
            try:
                async with self.sessions() as session:
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

    async def _load_audio(self, task: Task, run: _Run) -> np.ndarray:
        if task.source == "url":
            async with self.sessions() as session:
                fetched = await media.has_media(session=session, task_id=task.id)
            if not fetched:
                await self._fetch(task, run)
        async with self.sessions() as session:
            data = await media.load_media(session=session, task_id=task.id)
        if run.stop.is_set():
            raise TranscriptionInterrupted()
        return await asyncio.to_thread(media.decode_pcm, data)

    async def _fetch(self, task: Task, run: _Run) -> None:
        """Download a URL task's media (direct link, or a page through yt-dlp), decode it and store it."""
        assert task.source_url is not None
        meta: dict[str, Any] = dict(task.source_meta or {})
        source: Path | None = None
        decoded: media.DecodedMedia | None = None
        try:
            if task.source == "platform":
                source = await self._fetch_page(task.source_url, meta)
            else:
                try:
                    source = await download(
                        task.source_url, max_bytes=self.settings.max_upload_bytes, allowlist=self.settings.allowed_hosts
                    )
                except PageNotMedia:
                    source = await self._fetch_page(task.source_url, meta)
            decoded = await asyncio.to_thread(
                media.decode_for_storage,
                source,
                max_seconds=self.settings.max_audio_seconds,
                bitrate=self.settings.media_bitrate,
            )
            key = task_service.content_key(
                decoded.sha256, task_type=task.task_type, model=task.model, language=task.language, options=task.options
            )
            async with self.sessions() as session:
                if not await queue.attach_media(
                    session=session, lease=run.lease, audio=decoded, source_meta=meta or None, content_hash=key
                ):
                    run.interrupt(LeaseLost)
            task.content_hash = key  # the claimed row (detached) now matches the database
        finally:
            for path in (source, decoded.path if decoded else None):
                if path:
                    path.unlink(missing_ok=True)
            if source is not None and source.parent.name.startswith("ytdlp-"):
                shutil.rmtree(source.parent, ignore_errors=True)

    async def _fetch_page(self, url: str, meta: dict[str, Any]) -> Path:
        """A page link through yt-dlp, after the same outbound check as any URL; records the page's metadata."""
        await resolve_checked(url, allowlist=self.settings.allowed_hosts)
        cookies = self.settings.douyin_cookies_file if meta.get("platform") == "douyin" else None
        fetched = await asyncio.to_thread(
            fetch_page,
            url,
            max_bytes=self.settings.max_upload_bytes,
            max_seconds=self.settings.max_audio_seconds,
            check_url=functools.partial(resolve_checked_sync, allowlist=self.settings.allowed_hosts),
            cookies_file=cookies,
        )
        meta.update(fetched.meta)
        return fetched.path

"""Prometheus metrics. Queue, task, worker and webhook figures are read from the database at scrape time, so any
API node reports the whole cluster whatever runs where; HTTP latency is measured in each API process.

Figures derived from stored tasks (durations, real-time factors, audio seconds, webhook attempts) fall when tasks
are deleted; Prometheus treats that as a counter reset.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db.models import Task, WebhookAttempt, WorkerRecord
from app.db.types import utcnow
from app.schemas.tasks import Priority, TaskStatus
from app.services import chores
from app.services.workers import is_alive

DURATION_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0)

# Label values come from the request line, which anyone can write: only these methods get their own series, so an
# unauthenticated client cannot grow /metrics without bound (unmatched paths share the route label "unmatched").
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REGISTRY = CollectorRegistry()
HTTP_LATENCY = Histogram(
    "whisper_http_request_duration_seconds",
    "Time from request to response headers, per route template, method and status.",
    ["method", "route", "status"],
    registry=HTTP_REGISTRY,
)


class HttpMetrics:
    """ASGI middleware timing each request to its response start (so event streams count their first byte)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
                HTTP_LATENCY.labels(method, route, str(message["status"])).observe(time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, timed_send)


class _Families(Collector):
    """Hands prepared metric families to a registry."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self.families


async def render(session: AsyncSession, *, reap_seconds: float) -> bytes:
    """The exposition text: this process's HTTP histogram and the cluster figures from the database."""
    registry = CollectorRegistry()
    registry.register(_Families(await cluster_families(session, reap_seconds=reap_seconds)))
    return generate_latest(HTTP_REGISTRY) + generate_latest(registry)


async def cluster_families(session: AsyncSession, *, reap_seconds: float) -> list[Metric]:
    """Queue, tasks, workers and webhooks, as the database has them now."""
    now = utcnow()
    families: list[Metric] = []

    tasks = GaugeMetricFamily(
        "whisper_tasks", "Tasks in the database by status and priority.", labels=["status", "priority"]
    )
    depth = GaugeMetricFamily("whisper_queue_depth", "Queued tasks by priority.", labels=["priority"])
    counts = {(status, rank): 0 for status in TaskStatus for rank in (0, 1, 2)}
    for status, rank, count in await session.execute(
        select(Task.status, Task.priority, func.count()).group_by(Task.status, Task.priority)
    ):
        counts[(TaskStatus(status), int(rank))] = int(count)
    for (status, rank), count in counts.items():
        tasks.add_metric([status.value, Priority.from_rank(rank).value], count)
        if status is TaskStatus.queued:
            depth.add_metric([Priority.from_rank(rank).value], count)
    oldest = dict(
        (int(rank), created)
        for rank, created in await session.execute(
            select(Task.priority, func.min(Task.created_at))
            .where(Task.status == TaskStatus.queued.value)
            .group_by(Task.priority)
        )
    )
    age = GaugeMetricFamily(
        "whisper_queue_oldest_age_seconds",
        "Age of the oldest queued task by priority (0 when none).",
        labels=["priority"],
    )
    for rank in (0, 1, 2):
        created = oldest.get(rank)
        age.add_metric([Priority.from_rank(rank).value], (now - created).total_seconds() if created else 0.0)
    families += [tasks, depth, age]

    families += await _finished_task_families(session)
    purged = CounterMetricFamily(
        "whisper_tasks_purged",
        "Finished tasks deleted with everything they owned once their retention passed (WHISPER_RETENTION_SECONDS "
        "or their own delete_after_seconds).",
    )
    purged.add_metric([], await chores.done(session=session, chore=chores.RETENTION))
    families.append(purged)
    families += await _worker_families(session, now=now, reap_seconds=reap_seconds)
    families.append(await _webhook_family(session))
    await session.commit()
    return families


async def _finished_task_families(session: AsyncSession) -> list[Metric]:
    """Histograms of processing time and real-time factor, and audio processed, over transcribed tasks."""
    transcribed = (
        Task.status == TaskStatus.completed.value,
        Task.processing_seconds.is_not(None),
        Task.reused_from.is_(None),
        Task.media_duration > 0,
    )
    rtf = Task.processing_seconds / Task.media_duration
    columns: list[Any] = [func.count(), func.sum(Task.processing_seconds), func.sum(rtf), func.sum(Task.media_duration)]
    columns += [func.sum(case((Task.processing_seconds <= b, 1), else_=0)) for b in DURATION_BUCKETS]
    columns += [func.sum(case((rtf <= b, 1), else_=0)) for b in RTF_BUCKETS]
    row = (await session.execute(select(*columns).where(*transcribed))).one()
    count, duration_sum, rtf_sum, audio = int(row[0]), float(row[1] or 0), float(row[2] or 0), float(row[3] or 0)
    duration_counts = [int(v or 0) for v in row[4 : 4 + len(DURATION_BUCKETS)]]
    rtf_counts = [int(v or 0) for v in row[4 + len(DURATION_BUCKETS) :]]

    duration = HistogramMetricFamily(
        "whisper_task_duration_seconds", "Processing time of transcribed tasks (fetch, decode, transcribe, store)."
    )
    duration.add_metric([], _buckets(DURATION_BUCKETS, duration_counts, count), duration_sum)
    factor = HistogramMetricFamily(
        "whisper_task_realtime_factor",
        "Processing seconds per second of audio, of transcribed tasks (lower is faster).",
    )
    factor.add_metric([], _buckets(RTF_BUCKETS, rtf_counts, count), rtf_sum)
    processed = CounterMetricFamily("whisper_audio_processed_seconds", "Seconds of audio transcribed.")
    processed.add_metric([], audio)
    return [duration, factor, processed]


def _buckets(bounds: tuple[float, ...], cumulative: list[int], count: int) -> list[tuple[str, float]]:
    return [*((str(b), float(n)) for b, n in zip(bounds, cumulative, strict=True)), ("+Inf", float(count))]


async def _worker_families(session: AsyncSession, *, now: datetime, reap_seconds: float) -> list[Metric]:
    alive = GaugeMetricFamily("whisper_workers_alive", "Worker processes that reported recently.")
    heartbeat = GaugeMetricFamily(
        "whisper_worker_heartbeat_age_seconds",
        "Seconds since each running worker last reported.",
        labels=["worker", "host", "device"],
    )
    running = GaugeMetricFamily("whisper_worker_running_tasks", "Tasks each running worker holds.", labels=["worker"])
    count = 0
    for worker in await session.scalars(select(WorkerRecord).where(WorkerRecord.stopped_at.is_(None))):
        if is_alive(worker, reap_seconds=reap_seconds):
            count += 1
        heartbeat.add_metric([worker.id, worker.host, worker.device], (now - worker.heartbeat_at).total_seconds())
        running.add_metric([worker.id], len(worker.running))
    alive.add_metric([], count)
    return [alive, heartbeat, running]


async def _webhook_family(session: AsyncSession) -> Metric:
    attempts = CounterMetricFamily(
        "whisper_webhook_attempts", "Callback delivery attempts by outcome.", labels=["outcome"]
    )
    outcomes = {"delivered": 0, "http_error": 0, "no_answer": 0}
    rows = await session.execute(select(WebhookAttempt.status_code, func.count()).group_by(WebhookAttempt.status_code))
    for code, n in rows:
        if code is None:
            outcomes["no_answer"] += int(n)
        elif 200 <= code < 300:
            outcomes["delivered"] += int(n)
        else:
            outcomes["http_error"] += int(n)
    for outcome, n in outcomes.items():
        attempts.add_metric([outcome], n)
    return attempts

"""Queue throughput and query latency on SQLite, MariaDB and PostgreSQL.

    python -m bench.queue [--only sqlite|mariadb|postgresql] [--tasks 2000] [--big 100000] [--backlog 40000]
                          [--mysql ADMIN_URL] [--postgres ADMIN_URL]

For each database, on a fresh schema:
- enqueue/s: 8 concurrent producers create tasks through the task service (row + one media chunk);
- claim+complete/s: 8 worker processes loop claim -> complete through the queue service until the queue is empty;
- with `--big` tasks queued: claim latency (p50/p95 of single claims) and list/filter latency (p95 per query shape,
  the same service call GET /v1/tasks makes, with the total count). Targets: >= 300 claim+complete/s on MariaDB,
  list/filter p95 < 50 ms;
- claim latency during a retention purge: `--big` more finished tasks (each with its result) due for deletion, then
  8 worker processes claim+complete for a while with no purge, then again while one more process purges them all
  (the workers' retention purge: batches of retention.BATCH); p50/p95 of the claims in each, and the purge's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from app.db.engine import create_engine, session_factory
from app.db.models import TASK_RESULTS, Task, take_numbers
from app.schemas.tasks import Priority, TaskCreate, TaskStatus
from app.schemas.transcript import Transcript
from app.services import queue, retention, tasks
from app.services.admission import admit
from app.services.media import DecodedMedia
from app.services.tasks import TaskFilters
from app.settings import Settings
from bench.databases import KINDS, SERVER_URLS, drop_database, fresh_database

WORKERS = 8
PRODUCERS = 8
BASELINE_SECONDS = 10.0
TRANSCRIPT = Transcript(text="x", language="en", language_probability=1.0, duration=1.0, segments=[])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def enqueue(url: str, count: int) -> float:
    """Tasks per second created through the task service by concurrent producers."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    media_file = Path(tempfile.mkdtemp()) / "a.ogg"
    media_file.write_bytes(b"\0" * 4000)  # about 1 s of stored Opus
    audio = DecodedMedia(media_file, 1.0, 4000, "ogg", "0" * 64)
    settings = Settings(database_url=url)
    admission = admit(TaskCreate(language="en"), owner="", settings=settings)

    async def producer(n: int) -> None:
        for _ in range(n):
            async with sessions() as session:
                await tasks.create_task(session=session, admission=admission, settings=settings, audio=audio)

    start = time.perf_counter()
    await asyncio.gather(*(producer(count // PRODUCERS) for _ in range(PRODUCERS)))
    elapsed = time.perf_counter() - start
    await engine.dispose()
    return (count // PRODUCERS * PRODUCERS) / elapsed


def _worker_process(url: str, ready: Any, go: Any, stop: Any, results: Any) -> None:
    ready.put(True)  # imported and about to connect: the clock starts when every process is here
    go.wait()

    async def run() -> tuple[int, list[tuple[float, float]]]:
        engine = create_engine(url, pool_pre_ping=False)
        sessions = session_factory(engine)
        done = 0
        claims: list[tuple[float, float]] = []  # (when, milliseconds) of each claim
        while not stop.is_set():
            started, clock = time.time(), time.perf_counter()
            async with sessions() as session:
                claimed = await queue.claim(
                    session=session, worker_id=f"bench-{uuid.uuid4().hex[:6]}", lease_seconds=60
                )
            claims.append((started, (time.perf_counter() - clock) * 1000))
            if not claimed:
                break
            task = claimed[0]
            assert task.lease_token
            async with sessions() as session:
                await queue.complete(
                    session=session,
                    lease=queue.Lease(task.id, task.lease_token),
                    transcript=TRANSCRIPT,
                    processing_seconds=0.0,
                    callback_url=None,
                    keep_seconds=None,
                )
            done += 1
        await engine.dispose()
        return done, claims

    results.put(asyncio.run(run()))


def _purge_process(url: str, ready: Any, go: Any, stop: Any, results: Any) -> None:
    """Delete every due task as the workers' housekeeping does (one holder, batches), then stop the workers."""
    ready.put(True)
    go.wait()

    async def run() -> tuple[float, float, int]:
        engine = create_engine(url, pool_pre_ping=False)
        started = time.time()
        async with session_factory(engine)() as session:
            purged = await retention.purge(
                session=session, holder="bench", retention_seconds=0, lease_seconds=60, budget_seconds=3600
            )
        await engine.dispose()
        return started, time.time(), purged or 0

    figures = asyncio.run(run())
    stop.set()
    results.put(figures)


def run_workers(url: str, *, seconds: float | None = None, purge: bool = False) -> tuple[float, list[Any]]:
    """WORKERS processes claim+complete until the queue is empty, `seconds` have passed, or (with `purge`) one more
    process has purged every due task; the wall time, and per process its (tasks done, claims) (the purger's
    (start, end, deleted) last)."""
    context = multiprocessing.get_context("spawn")
    ready, go, stop, results, purged = (
        context.Queue(),
        context.Event(),
        context.Event(),
        context.Queue(),
        context.Queue(),
    )
    procs = [context.Process(target=_worker_process, args=(url, ready, go, stop, results)) for _ in range(WORKERS)]
    if purge:
        procs.append(context.Process(target=_purge_process, args=(url, ready, go, stop, purged)))
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get()
    start = time.perf_counter()
    go.set()
    if seconds is not None:
        time.sleep(seconds)
        stop.set()
    outcomes = [results.get() for _ in range(WORKERS)] + ([purged.get()] if purge else [])
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join()
    return elapsed, outcomes


def claim_complete(url: str) -> tuple[float, int]:
    """Claim+complete per second with WORKERS processes draining the queue."""
    elapsed, outcomes = run_workers(url)
    done = sum(count for count, _ in outcomes)
    return done / elapsed, done


async def fill(url: str, count: int) -> None:
    """Insert `count` tasks of mixed status, priority, language and age."""
    engine = create_engine(url)
    now = datetime.now(UTC)
    statuses = [TaskStatus.queued, TaskStatus.completed, TaskStatus.failed, TaskStatus.running]
    async with engine.begin() as conn:
        for start in range(0, count, 5000):
            rows: list[dict[str, Any]] = []
            for i in range(start, min(count, start + 5000)):
                status = statuses[i % 7 % 4] if i % 2 else TaskStatus.queued
                rows.append(
                    {
                        "id": str(uuid.uuid4()),
                        "owner": f"key{i % 5}",
                        "task_type": "transcribe",
                        "status": status.value,
                        "priority": i % 3,
                        "model": "base",
                        "language": ["en", "fr", "zh", "es"][i % 4],
                        "options": {},
                        "source": "upload",
                        "progress": 0,
                        "attempts": 0,
                        "max_attempts": 3,
                        "cancel_requested": False,
                        "run_at": now - timedelta(seconds=count - i),
                        "created_at": now - timedelta(seconds=count - i),
                        "error_type": "UnreadableMedia" if status is TaskStatus.failed else None,
                    }
                )
            numbers = await conn.run_sync(take_numbers, [row["id"] for row in rows])
            await conn.execute(insert(Task), [{**row, "number": numbers[row["id"]]} for row in rows])
    await engine.dispose()


async def fill_for_purge(url: str, due: int, queued: int) -> None:
    """`due` completed tasks past their deletion time, each with its result row, and `queued` tasks to claim."""
    engine = create_engine(url)
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "owner": "",
        "task_type": "transcribe",
        "priority": 1,
        "model": "base",
        "options": {},
        "source": "upload",
    }
    base |= {"attempts": 0, "max_attempts": 3, "cancel_requested": False, "run_at": now, "created_at": now}
    async with engine.begin() as conn:
        for start in range(0, due + queued, 5000):
            rows: list[dict[str, Any]] = []
            for i in range(start, min(due + queued, start + 5000)):
                finished = i < due
                rows.append(
                    base
                    | {
                        "id": str(uuid.uuid4()),
                        "status": (TaskStatus.completed if finished else TaskStatus.queued).value,
                        "progress": 100 if finished else 0,
                        "finished_at": now - timedelta(hours=2) if finished else None,
                        "delete_at": now - timedelta(hours=1) if finished else None,
                    }
                )
            numbers = await conn.run_sync(take_numbers, [row["id"] for row in rows])
            await conn.execute(insert(Task), [{**row, "number": numbers[row["id"]]} for row in rows])
            results = [row["id"] for row in rows if row["status"] == TaskStatus.completed.value]
            if results:
                columns = queue.result_columns(TRANSCRIPT)
                await conn.execute(insert(TASK_RESULTS), [{"task_id": task_id, **columns} for task_id in results])
    await engine.dispose()


def claims_during_purge(url: str) -> dict[str, Any]:
    """Claim p50/p95 (ms) with no purge, then while every due task is purged; and the purge's own figures."""
    _, calm = run_workers(url, seconds=BASELINE_SECONDS)
    _, busy = run_workers(url, purge=True)
    purge_start, purge_end, purged = busy.pop()
    during = [ms for _, claims in busy for when, ms in claims if purge_start <= when <= purge_end]
    quiet = [ms for _, claims in calm for _, ms in claims]
    return {
        "no purge": (statistics.median(quiet), percentile(quiet, 0.95), len(quiet)),
        "purging": (statistics.median(during), percentile(during, 0.95), len(during)),
        "purged": (purged, purge_end - purge_start),
    }


async def latencies(url: str) -> dict[str, tuple[float, float]]:
    """p50/p95 milliseconds of single claims and of list/filter queries."""
    engine = create_engine(url)
    sessions = session_factory(engine)
    measured: dict[str, list[float]] = {}

    async def time_it(name: str, call: Any) -> None:
        for _ in range(60):
            start = time.perf_counter()
            async with sessions() as session:
                await call(session)
            measured.setdefault(name, []).append((time.perf_counter() - start) * 1000)

    async def claim_one(session: Any) -> None:
        await queue.claim(session=session, worker_id="bench", lease_seconds=60)

    await time_it("claim (one task)", claim_one)
    day_ago = datetime.now(UTC) - timedelta(hours=6)
    shapes: dict[str, tuple[str | None, TaskFilters]] = {
        "list: newest 50": (None, TaskFilters()),
        "list: one owner": ("key3", TaskFilters()),
        "list: status=completed": (None, TaskFilters(status=TaskStatus.completed)),
        "list: owner+status+priority": ("key1", TaskFilters(status=TaskStatus.queued, priority=Priority.high)),
        "list: language=fr, created_after": (None, TaskFilters(language="fr", created_after=day_ago)),
        "list: has_error=true": (None, TaskFilters(has_error=True)),
    }
    for name, (owner, filters) in shapes.items():

        async def listing(session: Any, owner: str | None = owner, filters: TaskFilters = filters) -> None:
            await tasks.list_tasks(session=session, owner=owner, filters=filters, limit=50, cursor=None)

        await time_it(name, listing)
    await engine.dispose()
    return {name: (statistics.median(v), percentile(v, 0.95)) for name, v in measured.items()}


async def bench(kind: str, args: argparse.Namespace) -> None:
    url = await fresh_database(kind, {"mariadb": args.mysql, "postgresql": args.postgres}.get(kind))
    try:
        enqueue_rate = await enqueue(url, args.tasks)
        rate, drained = claim_complete(url)
        print(f"\n## {kind}")
        print(f"{'measure':<36}{'value':>14}")
        print(f"{'enqueue/s (8 producers)':<36}{enqueue_rate:>14.0f}")
        print(f"{'claim+complete/s (8 processes)':<36}{rate:>14.0f}   ({drained} tasks)")
        await fill(url, args.big)
        print(f"\nwith {args.big:,} tasks in the table          p50 ms    p95 ms")
        for name, (p50, p95) in (await latencies(url)).items():
            print(f"{name:<36}{p50:>10.1f}{p95:>10.1f}")
        await fill_for_purge(url, args.big, args.backlog)
        figures = claims_during_purge(url)
        print(f"\nclaims by {WORKERS} processes (claim+complete)   p50 ms    p95 ms    claims")
        for name in ("no purge", "purging"):
            p50, p95, n = figures[name]
            print(f"{'claim, ' + name:<36}{p50:>10.1f}{p95:>10.1f}{n:>10}")
        purged, seconds = figures["purged"]
        rate = purged / seconds
        print(f"retention purge: {purged:,} tasks in {seconds:.1f} s ({rate:.0f}/s, {retention.BATCH} a batch)")
    finally:
        await drop_database(url, {"mariadb": args.mysql, "postgresql": args.postgres}.get(kind))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mysql", default=SERVER_URLS["mariadb"], help="administrator URL of the MariaDB server")
    parser.add_argument("--postgres", default=SERVER_URLS["postgresql"], help="administrator URL of PostgreSQL")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument(
        "--backlog",
        type=int,
        default=40_000,
        help="queued tasks for the claims during the purge (enough to outlast it)",
    )
    parser.add_argument("--only", choices=KINDS)
    args = parser.parse_args()
    for kind in KINDS:
        if args.only in (None, kind):
            asyncio.run(bench(kind, args))


if __name__ == "__main__":
    main()

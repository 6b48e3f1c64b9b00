"""The queue under real processes and faults, on SQLite, MariaDB and PostgreSQL: exactly once, crashes, zombies,
shutdown.

Workers are real `python -m tests.worker_process` processes (the real Worker with a fast engine that logs every
execution to a table without a unique constraint).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import IDLE_TRANSACTION_SECONDS, create_engine
from app.db.models import MediaChunk, Task, TaskResult, WebhookEvent, WorkerRecord, take_numbers
from app.db.types import utcnow
from app.services.media import decode_for_storage
from bench.databases import kill_other_connections
from tests.media_files import write_audio
from tests.worker_process import executions, metadata

FAST = {
    "WHISPER_LEASE_SECONDS": "3",
    "WHISPER_HEARTBEAT_SECONDS": "1",
    "WHISPER_REAP_SECONDS": "1",
    "WHISPER_POLL_SECONDS": "0.05",
    "WHISPER_SHUTDOWN_GRACE_SECONDS": "10",
}


@pytest.fixture(scope="module")
def tiny_opus(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """0.3 s of a tone, stored the way intake stores audio."""
    import numpy as np

    folder = tmp_path_factory.mktemp("tiny")
    t = np.arange(4800) / 16_000
    samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    wav = write_audio(folder / "tone.wav", samples, container="wav", codec="pcm_s16le")
    decoded = decode_for_storage(wav, max_seconds=10, bitrate=32_000)
    return decoded.path.read_bytes()


class Fleet:
    """Worker processes on one database, and the queries the tests ask of it."""

    def __init__(self, url: str, engine: AsyncEngine, tmp_path: Path, media: bytes) -> None:
        self.url = url
        self.engine = engine
        self.tmp_path = tmp_path
        self.media = media
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: list[Any] = []

    def spawn(self, name: str = "node-a", *, delay: float = 0.0, **env: str) -> subprocess.Popen[str]:
        log = (self.tmp_path / f"worker-{len(self.procs)}.log").open("w")
        self.logs.append(log)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.worker_process"],
            env={
                **os.environ,
                **FAST,
                "WHISPER_DATABASE_URL": self.url,
                "WHISPER_DATA_DIR": str(self.tmp_path / f"node-{name}"),
                "WHISPER_WORKER_NAME": name,
                "WHISPER_TEST_DELAY": str(delay),
                "WHISPER_LOG_LEVEL": "WARNING",
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.procs.append(proc)
        return proc

    @staticmethod
    def worker_id(proc: subprocess.Popen[str]) -> str:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("worker-id "), line
        return line.split(" ", 1)[1].strip()

    async def seed(self, count: int, **overrides: Any) -> list[str]:
        now = utcnow()
        ids = [str(uuid.uuid4()) for _ in range(count)]
        rows = [
            {
                "id": task_id,
                "owner": "",
                "task_type": "transcribe",
                "status": "queued",
                "priority": 1,
                "model": "base",
                "language": "en",
                "options": {},
                "source": "upload",
                "progress": 0,
                "attempts": 0,
                "max_attempts": 3,
                "run_at": now - timedelta(seconds=count - i),
                "cancel_requested": False,
                "created_at": now,
                "media_duration": 0.3,
                **overrides,
            }
            for i, task_id in enumerate(ids)
        ]
        async with self.engine.begin() as conn:
            for start in range(0, count, 500):
                batch = rows[start : start + 500]
                numbers = await conn.run_sync(take_numbers, [row["id"] for row in batch])
                await conn.execute(insert(Task), [{**row, "number": numbers[row["id"]]} for row in batch])
                await conn.execute(
                    insert(MediaChunk), [{"task_id": t, "seq": 0, "data": self.media} for t in ids[start : start + 500]]
                )
        return ids

    async def scalar(self, query: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).scalar()

    async def task(self, task_id: str) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(Task).where(Task.id == task_id))).one()

    async def wait(self, predicate: Callable[[], Any], *, timeout: float, what: str, log: Path | None = None) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if await predicate():
                return time.monotonic() - start
            await asyncio.sleep(0.1)
        tail = f"; its log:\n{log.read_text()[-4000:]}" if log is not None else ""
        raise AssertionError(f"{what}: not within {timeout} s{tail}")

    async def status_is(self, task_id: str, status: str) -> bool:
        return bool(await self.scalar(select(Task.status == status).where(Task.id == task_id)))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        for log in self.logs:
            log.close()


@asynccontextmanager
async def make_fleet(url: str, tmp_path: Path, media: bytes) -> AsyncIterator[Fleet]:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    running = Fleet(url, engine, tmp_path, media)
    try:
        yield running
    finally:
        running.stop_all()
        await engine.dispose()


@pytest.fixture
async def fleet(db_url: str, tmp_path: Path, tiny_opus: bytes) -> AsyncIterator[Fleet]:
    async with make_fleet(db_url, tmp_path, tiny_opus) as running:
        yield running


def is_server(fleet: Fleet) -> bool:
    """A database server (MariaDB, PostgreSQL) that several machines share, rather than SQLite's one file."""
    return not fleet.url.startswith("sqlite")


async def test_exactly_once_under_many_processes(fleet: Fleet) -> None:
    # A server: 2 simulated nodes x 4 worker processes; SQLite (one machine): 4 processes. 1,000 tasks each.
    nodes = ["node-a", "node-b"] if is_server(fleet) else ["node-a"]
    ids = set(await fleet.seed(1000))
    for node in nodes:
        for _ in range(4):
            fleet.spawn(node, WHISPER_WORKER_CONCURRENCY="2", WHISPER_LEASE_SECONDS="30", WHISPER_HEARTBEAT_SECONDS="5")
    completed = select(func.count()).select_from(Task).where(Task.status == "completed")
    elapsed = await fleet.wait(lambda: _equals(fleet.scalar(completed), 1000), timeout=300, what="1000 tasks completed")
    fleet.stop_all()
    async with fleet.engine.connect() as conn:
        runs = (await conn.execute(select(executions.c.task_id, func.count()).group_by(executions.c.task_id))).all()
        by_node = (await conn.execute(select(executions.c.worker_id))).scalars().all()
        results = (await conn.execute(select(func.count()).select_from(TaskResult))).scalar()
    duplicates = [task_id for task_id, n in runs if n > 1]
    lost = ids - {task_id for task_id, _ in runs}
    print(
        f"{len(ids)} tasks, {len(nodes) * 4} processes: {elapsed:.1f} s, duplicates {len(duplicates)}, lost {len(lost)}"
    )
    assert duplicates == [] and lost == set() and results == 1000
    assert {worker.split(":")[0] for worker in by_node} == set(nodes)
    assert len({worker for worker in by_node}) == len(nodes) * 4  # every process took part


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_a_killed_worker_s_task_is_finished_by_another(fleet: Fleet) -> None:
    [task_id] = await fleet.seed(1, callback_url="https://hooks.example.com/x")
    first = fleet.spawn("node-a", delay=30)
    first_id = fleet.worker_id(first)
    await fleet.wait(lambda: fleet.status_is(task_id, "running"), timeout=30, what="claimed by the first worker")
    second = fleet.spawn("node-b", delay=0.5)
    second_id = fleet.worker_id(second)
    alive = select(func.count()).select_from(WorkerRecord).where(WorkerRecord.id == second_id)
    await fleet.wait(lambda: _equals(fleet.scalar(alive), 1), timeout=30, what="second worker registered")
    assert (await fleet.task(task_id)).lease_owner == first_id

    first.send_signal(signal.SIGKILL)
    rescued_in = await fleet.wait(lambda: fleet.status_is(task_id, "completed"), timeout=30, what="rescued")
    lease, reap = float(FAST["WHISPER_LEASE_SECONDS"]), float(FAST["WHISPER_REAP_SECONDS"])
    print(f"rescued {rescued_in:.1f} s after SIGKILL (bound: lease {lease} + reaper {reap} + 5 s)")
    assert rescued_in <= lease + reap + 5
    task = await fleet.task(task_id)
    assert task.attempts == 2 and task.lease_owner == second_id
    assert (await fleet.scalar(select(TaskResult.text).where(TaskResult.task_id == task_id))).startswith(
        f"done by {second_id} in "
    )
    assert await fleet.scalar(select(func.count()).select_from(TaskResult)) == 1
    assert await fleet.scalar(select(func.count()).select_from(WebhookEvent)) == 1
    assert await fleet.scalar(select(func.count()).select_from(executions)) == 2


async def test_a_zombie_changes_nothing_after_it_wakes(fleet: Fleet) -> None:
    [task_id] = await fleet.seed(1, callback_url="https://hooks.example.com/x")
    # Its engine runs far longer than the test: when it wakes it is still decoding, and its next heartbeat is what
    # finds the task gone (a completion with a lost lease is tested in tests/integration/test_queue.py).
    zombie = fleet.spawn("node-a", delay=600)
    zombie_id = fleet.worker_id(zombie)
    # Frozen only once its engine runs (an execution is recorded as the engine starts), not while it loads the audio.
    decoding = select(func.count()).select_from(executions).where(executions.c.worker_id == zombie_id)
    await fleet.wait(lambda: fleet.scalar(decoding), timeout=30, what="decoding by the zombie")
    zombie.send_signal(signal.SIGSTOP)
    other = fleet.spawn("node-b", delay=0.5)
    other_id = fleet.worker_id(other)
    # Frozen inside a transaction (one in five runs on MariaDB), the zombie holds row locks that the server ends only
    # after IDLE_TRANSACTION_SECONDS; until then `SKIP LOCKED` passes the task by.
    took_over = IDLE_TRANSACTION_SECONDS + 30
    await fleet.wait(lambda: fleet.status_is(task_id, "completed"), timeout=took_over, what="taken over and completed")
    before = await fleet.task(task_id)
    zombie.send_signal(signal.SIGCONT)
    zombie_log = fleet.tmp_path / "worker-0.log"

    async def zombie_stopped() -> bool:
        return f"task {task_id}: stopped, lease lost" in zombie_log.read_text()

    await fleet.wait(zombie_stopped, timeout=60, what="the zombie noticed it lost the task", log=zombie_log)
    after = await fleet.task(task_id)
    assert after == before
    assert after.lease_owner == other_id and after.attempts == 2
    assert (await fleet.scalar(select(TaskResult.text).where(TaskResult.task_id == task_id))).startswith(
        f"done by {other_id} in "
    )
    assert await fleet.scalar(select(func.count()).select_from(TaskResult)) == 1
    assert await fleet.scalar(select(func.count()).select_from(WebhookEvent)) == 1
    assert zombie.poll() is None, "the zombie keeps running and serving"
    assert zombie_id != other_id


async def test_sigterm_lets_a_running_task_finish_within_the_grace_period(fleet: Fleet) -> None:
    [task_id] = await fleet.seed(1)
    worker = fleet.spawn("node-a", delay=2)
    worker_id = fleet.worker_id(worker)
    await fleet.wait(lambda: fleet.status_is(task_id, "running"), timeout=30, what="claimed")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    task = await fleet.task(task_id)
    assert (task.status, task.attempts, task.lease_owner) == ("completed", 1, worker_id)
    stopped = select(WorkerRecord.stopped_at).where(WorkerRecord.id == worker_id)
    assert await fleet.scalar(stopped) is not None


async def test_sigterm_past_the_grace_period_hands_the_task_over_at_once(fleet: Fleet) -> None:
    [task_id] = await fleet.seed(1)
    leaving = fleet.spawn("node-a", delay=60, WHISPER_SHUTDOWN_GRACE_SECONDS="1")
    fleet.worker_id(leaving)
    await fleet.wait(lambda: fleet.status_is(task_id, "running"), timeout=30, what="claimed")
    staying = fleet.spawn("node-b", delay=0.2)
    staying_id = fleet.worker_id(staying)
    registered = select(func.count()).select_from(WorkerRecord).where(WorkerRecord.id == staying_id)
    await fleet.wait(lambda: _equals(fleet.scalar(registered), 1), timeout=30, what="second worker up")
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(timeout=15) == 0
    taken_in = await fleet.wait(lambda: fleet.status_is(task_id, "completed"), timeout=10, what="taken over")
    task = await fleet.task(task_id)
    print(f"handed over and completed {taken_in:.1f} s after the first worker exited")
    assert taken_in < float(FAST["WHISPER_LEASE_SECONDS"])  # not rescued by lease expiry: released
    assert task.lease_owner == staying_id and task.attempts == 1  # the released attempt does not count


async def test_cancel_reaches_a_running_task_within_a_heartbeat(fleet: Fleet) -> None:
    [task_id] = await fleet.seed(1)
    fleet.worker_id(fleet.spawn("node-a", delay=60))
    await fleet.wait(lambda: fleet.status_is(task_id, "running"), timeout=30, what="claimed")
    async with fleet.engine.begin() as conn:
        await conn.execute(Task.__table__.update().where(Task.id == task_id).values(cancel_requested=True))
    stopped_in = await fleet.wait(lambda: fleet.status_is(task_id, "cancelled"), timeout=10, what="cancelled")
    assert stopped_in <= float(FAST["WHISPER_HEARTBEAT_SECONDS"]) + 1.5


@pytest.mark.parametrize("db_url", ["mariadb", "postgresql"], indirect=True)
async def test_killed_connections_lose_and_duplicate_nothing(db_url: str, tmp_path: Path, tiny_opus: bytes) -> None:
    """Kill every worker connection again and again while 4 processes work through 300 tasks."""
    async with make_fleet(db_url, tmp_path, tiny_opus) as fleet:
        ids = set(await fleet.seed(300))
        for _ in range(4):
            fleet.spawn("node-a", delay=0.02, WHISPER_LEASE_SECONDS="30", WHISPER_HEARTBEAT_SECONDS="5")
        database = make_url(db_url).database
        assert database
        kills = 0
        completed = select(func.count()).select_from(Task).where(Task.status == "completed")
        started = time.monotonic()
        deadline = started + 240
        while await fleet.scalar(completed) < 300:
            assert time.monotonic() < deadline, "tasks did not complete under connection kills"
            async with fleet.engine.connect() as conn:
                kills += await kill_other_connections(conn, database)
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        fleet.stop_all()
        async with fleet.engine.connect() as conn:
            runs = (await conn.execute(select(executions.c.task_id, func.count()).group_by(executions.c.task_id))).all()
            failed = (
                await conn.execute(select(func.count()).select_from(Task).where(Task.status != "completed"))
            ).scalar()
            rerun = (await conn.execute(select(func.count()).select_from(Task).where(Task.attempts > 1))).scalar()
        duplicates = [task_id for task_id, n in runs if n > 1]
        lost = ids - {task_id for task_id, _ in runs}
        print(f"{kills} connections killed; duplicates {len(duplicates)}, lost {len(lost)}")
        if duplicates:
            async with fleet.engine.connect() as conn:
                detail = (await conn.execute(select(executions).where(executions.c.task_id.in_(duplicates)))).all()
            print("duplicate executions:", detail)
        assert kills >= 20
        # Nothing waited for its lease to run out and run again: every dropped connection was retried on the spot.
        assert rerun == 0, f"{rerun} tasks were requeued (took {elapsed:.1f} s)"
        assert duplicates == [] and lost == set() and failed == 0

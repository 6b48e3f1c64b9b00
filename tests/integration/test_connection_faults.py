"""A MariaDB connection killed (KILL <id>) in the middle of claim, heartbeat and completion: 0 lost, 0 duplicates."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.db.engine import create_engine, session_factory
from app.db.models import Task, TaskResult, WebhookEvent
from app.db.types import utcnow
from app.schemas.transcript import Transcript
from app.services import queue
from app.services.queue import Lease

TRANSCRIPT = Transcript(text="hi", language="en", language_probability=1.0, duration=1.0, segments=[])


class Killer:
    """Kills the connection that is about to run a matching statement (or to COMMIT), once per arming."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.pattern: tuple[str, ...] | None = None
        self.kills = 0
        client = shutil.which("mariadb") or shutil.which("mysql")
        assert client, "the mariadb client is needed to kill connections"
        self.client = client
        event.listen(engine.sync_engine, "before_cursor_execute", self._before_execute)
        event.listen(engine.sync_engine, "commit", self._before_commit)

    def arm(self, *parts: str) -> None:
        self.pattern = parts

    def _kill(self, conn: Connection) -> None:
        self.pattern = None
        thread_id = conn.connection.driver_connection.server_thread_id[0]  # type: ignore[union-attr]
        subprocess.run([self.client, "-h127.0.0.1", "-uroot", "-e", f"KILL {thread_id}"], check=True)
        self.kills += 1

    def _before_execute(self, conn: Connection, _c: Any, statement: str, *_: Any) -> None:
        if self.pattern and self.pattern != ("COMMIT",) and all(part in statement for part in self.pattern):
            self._kill(conn)

    def _before_commit(self, conn: Connection) -> None:
        if self.pattern == ("COMMIT",):
            self._kill(conn)


@pytest.fixture
async def faulty(mariadb_url: str) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], Killer]]:
    engine = create_engine(mariadb_url)
    yield session_factory(engine), Killer(engine)
    await engine.dispose()


Faulty = tuple[async_sessionmaker[AsyncSession], Killer]


async def count(sessions: async_sessionmaker[AsyncSession], model: type[Any], *where: Any) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


@pytest.mark.parametrize("at", ["FOR UPDATE SKIP LOCKED", "UPDATE tasks SET status", "COMMIT"])
async def test_claim_survives_a_killed_connection(
    faulty: Faulty, task_factory: Callable[..., Awaitable[Task]], at: str
) -> None:
    sessions, killer = faulty
    created = await task_factory(sessions)
    killer.arm(at)
    async with sessions() as session:
        claimed = await queue.claim(session=session, worker_id="w1", lease_seconds=30)
    assert killer.kills == 1
    assert [t.id for t in claimed] == [created.id]
    async with sessions() as session:
        assert await queue.claim(session=session, worker_id="w2", lease_seconds=30) == []
        stored = await session.get(Task, created.id)
    assert stored is not None and stored.status == "running" and stored.attempts == 1
    assert stored.lease_token == claimed[0].lease_token


async def test_heartbeat_survives_a_killed_connection(
    faulty: Faulty, task_factory: Callable[..., Awaitable[Task]]
) -> None:
    sessions, killer = faulty
    await task_factory(sessions)
    async with sessions() as session:
        [task] = await queue.claim(session=session, worker_id="w1", lease_seconds=5)
    assert task.lease_token
    killer.arm("UPDATE tasks SET", "cancel_requested")
    async with sessions() as session:
        await queue.heartbeat(session=session, lease=Lease(task.id, task.lease_token), lease_seconds=60, progress=7)
    assert killer.kills == 1
    async with sessions() as session:
        stored = await session.get(Task, task.id)
    assert stored is not None and stored.progress == 7
    assert stored.lease_expires_at is not None and (stored.lease_expires_at - utcnow()).total_seconds() > 50


@pytest.mark.parametrize("at", ["UPDATE tasks SET status", "INSERT INTO task_results", "COMMIT"])
async def test_completion_survives_a_killed_connection(
    faulty: Faulty, task_factory: Callable[..., Awaitable[Task]], at: str
) -> None:
    sessions, killer = faulty
    await task_factory(sessions, callback_url="https://hooks.example.com/x")
    async with sessions() as session:
        [task] = await queue.claim(session=session, worker_id="w1", lease_seconds=30)
    assert task.lease_token and task.callback_url
    killer.arm(at)
    async with sessions() as session:
        done = await queue.complete(
            session=session,
            lease=Lease(task.id, task.lease_token),
            transcript=TRANSCRIPT,
            processing_seconds=1,
            callback_url=task.callback_url,
        )
    assert killer.kills == 1 and done
    assert await count(sessions, Task, Task.status == "completed") == 1
    assert await count(sessions, TaskResult) == 1
    assert await count(sessions, WebhookEvent) == 1

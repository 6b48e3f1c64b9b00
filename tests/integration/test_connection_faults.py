"""A MariaDB connection cut in the middle of claim, heartbeat and completion: 0 lost, 0 duplicates.

The cuts happen in a TCP proxy between the service and the server (tests/mysql_proxy.py): before a statement reaches
the server, or after the server committed, with its acknowledgement dropped, so the recovery of a transaction that
committed although the client saw it fail really runs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import create_engine, session_factory
from app.db.models import Task, TaskPartial, TaskResult, WebhookEvent
from app.db.types import utcnow
from app.schemas.transcript import Segment, Transcript
from app.services import queue
from app.services.queue import Lease
from tests.mysql_proxy import CuttingProxy

TRANSCRIPT = Transcript(text="hi", language="en", language_probability=1.0, duration=1.0, segments=[])
SEGMENTS = [Segment(id=i, start=i, end=i + 1, text=f"s{i}", avg_logprob=-0.1, no_speech_prob=0.0) for i in range(2)]
RECOVERED = "committed before the connection dropped"


@pytest.fixture
async def faulty(mariadb_url: str) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], CuttingProxy]]:
    url = make_url(mariadb_url)
    proxy = CuttingProxy(url.host or "127.0.0.1", url.port or 3306)
    await proxy.start()
    engine = create_engine(url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False))
    yield session_factory(engine), proxy
    await engine.dispose()
    await proxy.stop()


Faulty = tuple[async_sessionmaker[AsyncSession], CuttingProxy]


def assert_cut(proxy: CuttingProxy, at: str, caplog: pytest.LogCaptureFixture) -> None:
    """The cut happened where armed, and after a commit the recovery of a lost acknowledgement ran."""
    recovered = [r for r in caplog.records if RECOVERED in r.getMessage()]
    if at == "COMMIT":
        assert (proxy.cut_after_commit, proxy.cut_before_statement) == (1, 0)
        assert len(recovered) == 1, [r.getMessage() for r in caplog.records]
    else:
        assert (proxy.cut_after_commit, proxy.cut_before_statement) == (0, 1)
        assert recovered == []


async def count(sessions: async_sessionmaker[AsyncSession], model: type[Any], *where: Any) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0


@pytest.mark.parametrize("at", ["FOR UPDATE SKIP LOCKED", "UPDATE tasks SET status", "COMMIT"])
async def test_claim_survives_a_cut_connection(
    faulty: Faulty, task_factory: Callable[..., Awaitable[Task]], caplog: pytest.LogCaptureFixture, at: str
) -> None:
    sessions, proxy = faulty
    created = await task_factory(sessions)
    caplog.set_level(logging.INFO)
    proxy.arm(at)
    async with sessions() as session:
        claimed = await queue.claim(session=session, worker_id="w1", lease_seconds=30)
    assert_cut(proxy, at, caplog)
    assert [t.id for t in claimed] == [created.id]
    async with sessions() as session:
        assert await queue.claim(session=session, worker_id="w2", lease_seconds=30) == []
        stored = await session.get(Task, created.id)
    assert stored is not None and stored.status == "running" and stored.attempts == 1  # claimed once, not twice
    assert stored.lease_token == claimed[0].lease_token


@pytest.mark.parametrize("at", ["UPDATE tasks SET", "INSERT INTO task_partials", "COMMIT"])
async def test_heartbeat_survives_a_cut_connection(
    faulty: Faulty, task_factory: Callable[..., Awaitable[Task]], caplog: pytest.LogCaptureFixture, at: str
) -> None:
    sessions, proxy = faulty
    await task_factory(sessions)
    async with sessions() as session:
        [task] = await queue.claim(session=session, worker_id="w1", lease_seconds=5)
    assert task.lease_token
    caplog.set_level(logging.INFO)
    proxy.arm(at)
    async with sessions() as session:
        await queue.heartbeat(
            session=session, lease=Lease(task.id, task.lease_token), lease_seconds=60, progress=7, segments=SEGMENTS
        )
    assert_cut(proxy, at, caplog)
    async with sessions() as session:
        stored = await session.get(Task, task.id)
        partials = (await session.scalars(select(TaskPartial.seq).where(TaskPartial.task_id == task.id))).all()
    assert stored is not None and stored.progress == 7
    assert stored.lease_expires_at is not None and (stored.lease_expires_at - utcnow()).total_seconds() > 50
    assert sorted(partials) == [0, 1]  # each streamed segment once


@pytest.mark.parametrize("at", ["UPDATE tasks SET status", "INSERT INTO task_results", "COMMIT"])
async def test_completion_survives_a_cut_connection(
    faulty: Faulty, task_factory: Callable[..., Awaitable[Task]], caplog: pytest.LogCaptureFixture, at: str
) -> None:
    sessions, proxy = faulty
    await task_factory(sessions, callback_url="https://hooks.example.com/x")
    async with sessions() as session:
        [task] = await queue.claim(session=session, worker_id="w1", lease_seconds=30)
    assert task.lease_token and task.callback_url
    caplog.set_level(logging.INFO)
    proxy.arm(at)
    async with sessions() as session:
        done = await queue.complete(
            session=session,
            lease=Lease(task.id, task.lease_token),
            transcript=TRANSCRIPT,
            processing_seconds=1,
            callback_url=task.callback_url,
            keep_seconds=task.delete_after_seconds,
        )
    assert_cut(proxy, at, caplog)
    assert done, "the worker is told its completion counted (not that its lease was lost)"
    assert await count(sessions, Task, Task.status == "completed") == 1
    assert await count(sessions, TaskResult) == 1
    assert await count(sessions, WebhookEvent) == 1

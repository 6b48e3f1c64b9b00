"""The retention purge against each database: one holder at a time (a lease that a dead holder loses), batches that
delete each due task once, deletion times for tasks that finished without one, and never an unfinished task."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import create_engine, session_factory
from app.db.models import Task, TaskDeletion, WebhookEvent, take_numbers
from app.db.types import utcnow
from app.schemas.tasks import TaskStatus
from app.services import chores, outbox, queue, retention

Sessions = async_sessionmaker[AsyncSession]
Factory = Callable[..., Awaitable[Task]]


async def finished_tasks(db: Sessions, count: int, **values: Any) -> list[str]:
    """Insert `count` completed tasks (bulk, as many as a purge meets), with overridable columns."""
    now = utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "owner": "",
            "task_type": "transcribe",
            "status": "completed",
            "priority": 1,
            "model": "base",
            "options": {},
            "source": "upload",
            "progress": 100,
            "attempts": 1,
            "max_attempts": 3,
            "cancel_requested": False,
            "run_at": now,
            "created_at": now,
            "finished_at": now,
            **values,
        }
        for _ in range(count)
    ]
    async with db() as session, session.begin():
        connection = await session.connection()
        numbers = await connection.run_sync(take_numbers, [row["id"] for row in rows])
        await session.execute(insert(Task), [{**row, "number": numbers[row["id"]]} for row in rows])
    return [row["id"] for row in rows]


async def remaining(db: Sessions) -> set[str]:
    async with db() as session:
        return set(await session.scalars(select(Task.id)))


async def purge(db: Sessions, holder: str, retention_seconds: int = 0) -> int | None:
    async with db() as session:
        return await retention.purge(
            session=session, holder=holder, retention_seconds=retention_seconds, lease_seconds=60, budget_seconds=60
        )


async def test_a_turn_is_one_holders_until_its_lease_runs_out(db: Sessions) -> None:
    start = utcnow()

    async def take(holder: str, seconds_later: float) -> bool:
        async with db() as session:
            return await chores.take_turn(
                session=session,
                chore=chores.RETENTION,
                holder=holder,
                lease_seconds=60,
                now=start + timedelta(seconds=seconds_later),
            )

    assert await take("a", 0)
    assert not await take("b", 59)
    assert await take("a", 30)  # renewed: until 90
    assert not await take("b", 89)
    assert await take("b", 91)  # a stopped renewing (it died): its turn expired
    due = await finished_tasks(db, 3, delete_at=start - timedelta(seconds=1))
    assert await purge(db, "a") is None  # a woke up: b's turn runs, a deletes nothing
    async with db() as session, session.begin():
        late = start + timedelta(seconds=91)  # a batch a began before: it renews nothing, so it deletes nothing
        assert not await chores.keep_turn(
            session=session, chore=chores.RETENTION, holder="a", lease_seconds=60, now=late
        )
    assert await remaining(db) >= set(due)


async def test_two_nodes_purging_at_once_delete_each_due_task_once(db_url: str, db: Sessions) -> None:
    now = utcnow()
    due = await finished_tasks(db, 2 * retention.BATCH + 50, delete_at=now - timedelta(minutes=1))
    later = await finished_tasks(db, 5, delete_at=now + timedelta(hours=1))
    engines = [create_engine(db_url), create_engine(db_url)]
    try:
        results = await asyncio.gather(*(purge(session_factory(e), f"node{i}") for i, e in enumerate(engines)))
    finally:
        for engine in engines:
            await engine.dispose()
    assert results.count(len(due)) == 1 and set(results) - {len(due)} <= {None, 0}, results
    assert await remaining(db) == set(later)
    async with db() as session:
        assert await chores.done(session=session, chore=chores.RETENTION) == len(due)
        assert await session.scalar(select(func.count()).select_from(TaskDeletion)) == len(due)


async def test_finished_tasks_without_a_deletion_time_get_one_when_retention_is_on(
    db: Sessions, task_factory: Factory
) -> None:
    now = utcnow()
    [old] = await finished_tasks(db, 1, finished_at=now - timedelta(hours=2))
    [recent] = await finished_tasks(db, 1, finished_at=now - timedelta(minutes=10))
    [own] = await finished_tasks(db, 1, finished_at=now - timedelta(minutes=10), delete_after_seconds=300)
    queued = await task_factory(db, created_at=now - timedelta(days=9), run_at=now + timedelta(hours=1))
    assert await purge(db, "w") == 0  # the server keeps tasks for ever: nothing to do
    assert await remaining(db) == {old, recent, own, queued.id}

    assert await purge(db, "w", retention_seconds=3600) == 2  # the old one, and the one that asked for 5 minutes
    assert await remaining(db) == {recent, queued.id}
    async with db() as session:
        kept = await session.get(Task, recent)
        waiting = await session.get(Task, queued.id)
    assert kept is not None and waiting is not None
    assert kept.finished_at is not None and kept.delete_at == kept.finished_at + timedelta(seconds=3600)
    assert waiting.delete_at is None


async def test_a_task_the_reaper_gives_up_on_gets_its_deletion_time(db: Sessions, task_factory: Factory) -> None:
    await task_factory(db, max_attempts=1, delete_after_seconds=60)
    async with db() as session:
        [task] = await queue.claim(session=session, worker_id="w", lease_seconds=30)
    async with db() as session, session.begin():
        await session.execute(update(Task).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    async with db() as session:
        assert await queue.reap_expired(session=session) == 1
    async with db() as session:
        failed = await session.get(Task, task.id)
    assert failed is not None and failed.status == "failed" and failed.finished_at is not None
    assert failed.delete_at == failed.finished_at + timedelta(seconds=60)


async def test_a_task_whose_webhook_event_is_still_being_retried_waits_for_it(db: Sessions) -> None:
    """A receiver that is down gets its retries: the task goes once its event is delivered or has failed for good."""
    past = utcnow() - timedelta(seconds=1)
    waiting, done = await finished_tasks(db, 2, delete_at=past, callback_url="https://example.com/hook")
    async with db() as session, session.begin():
        for task_id in (waiting, done):
            await outbox.record_event(
                session=session, task_id=task_id, status=TaskStatus.completed, callback_url="https://example.com/hook"
            )
        await session.execute(update(WebhookEvent).where(WebhookEvent.task_id == done).values(status="delivered"))
    assert await purge(db, "w") == 1
    assert await remaining(db) == {waiting}
    async with db() as session, session.begin():
        await session.execute(update(WebhookEvent).where(WebhookEvent.task_id == waiting).values(status="failed"))
    assert await purge(db, "w") == 1
    assert await remaining(db) == set()

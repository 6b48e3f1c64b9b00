"""The queue protocol on SQLite and MariaDB: ordering, exclusivity, leases, fencing, reaping."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Task, TaskResult, WebhookEvent
from app.db.types import utcnow
from app.errors import LeaseLost, TaskCancelled, TaskDeleted
from app.schemas.tasks import TaskStatus
from app.schemas.transcript import Transcript
from app.services import queue
from app.services.queue import Lease
from app.services.tasks import cancel_task, delete_task

Sessions = async_sessionmaker[AsyncSession]
Factory = Callable[..., Awaitable[Task]]
TRANSCRIPT = Transcript(text="hi", language="en", language_probability=0.9, duration=1.0, segments=[])


async def claim_one(db: Sessions, worker: str = "w1", lease: float = 30.0) -> Task | None:
    async with db() as session:
        claimed = await queue.claim(session=session, worker_id=worker, lease_seconds=lease)
    return claimed[0] if claimed else None


async def load(db: Sessions, task_id: str) -> Task:
    async with db() as session:
        task = await session.get(Task, task_id)
        assert task is not None
        return task


async def test_priority_then_age(db: Sessions, task_factory: Factory) -> None:
    now = utcnow()
    low = await task_factory(db, priority=2, run_at=now - timedelta(seconds=30))
    normal_old = await task_factory(db, priority=1, run_at=now - timedelta(seconds=20))
    normal_new = await task_factory(db, priority=1, run_at=now - timedelta(seconds=10))
    high = await task_factory(db, priority=0, run_at=now)
    later = await task_factory(db, priority=0, run_at=now + timedelta(hours=1))  # backing off: not due
    order = [(await claim_one(db)) for _ in range(5)]
    assert [t.id if t else None for t in order] == [high.id, normal_old.id, normal_new.id, low.id, None]
    assert (await load(db, later.id)).status == "queued"


async def test_claim_marks_running_with_a_lease(db: Sessions, task_factory: Factory) -> None:
    created = await task_factory(db)
    task = await claim_one(db, worker="host:1:abc", lease=30)
    assert task is not None and task.id == created.id
    stored = await load(db, created.id)
    assert stored.status == "running" and stored.attempts == 1 and stored.lease_owner == "host:1:abc"
    assert stored.lease_token == task.lease_token and stored.started_at is not None
    assert stored.lease_expires_at is not None
    assert timedelta(seconds=29) < stored.lease_expires_at - utcnow() <= timedelta(seconds=30)


async def test_concurrent_claims_never_share_a_task(db: Sessions, task_factory: Factory) -> None:
    ids = {(await task_factory(db)).id for _ in range(12)}
    results = await asyncio.gather(*(claim_one(db, worker=f"w{i}") for i in range(20)))
    claimed = [t.id for t in results if t is not None]
    assert sorted(claimed) == sorted(ids)


async def test_batch_claim(db: Sessions, task_factory: Factory) -> None:
    for _ in range(5):
        await task_factory(db)
    async with db() as session:
        claimed = await queue.claim(session=session, worker_id="w", lease_seconds=30, limit=3)
    assert len(claimed) == 3 and len({t.id for t in claimed}) == 3


async def test_completion_is_fenced_by_the_token(db: Sessions, task_factory: Factory) -> None:
    await task_factory(db)
    task = await claim_one(db)
    assert task is not None and task.lease_token
    async with db() as session:
        assert not await queue.complete(
            session=session,
            lease=Lease(task.id, "stale-token"),
            transcript=TRANSCRIPT,
            processing_seconds=1,
            callback_url=None,
            keep_seconds=None,
        )
    assert (await load(db, task.id)).status == "running"
    async with db() as session:
        assert await queue.complete(
            session=session,
            lease=Lease(task.id, task.lease_token),
            transcript=TRANSCRIPT,
            processing_seconds=1.5,
            callback_url=None,
            keep_seconds=None,
        )
    stored = await load(db, task.id)
    assert stored.status == "completed" and stored.progress == 100 and stored.processing_seconds == 1.5
    assert stored.lease_token == task.lease_token and stored.finished_at is not None  # marks the run that did it
    async with db() as session:
        result = await session.get(TaskResult, task.id)
        assert result is not None and result.text == "hi"
    async with db() as session:  # a second completion (a zombie's) changes nothing
        assert not await queue.complete(
            session=session,
            lease=Lease(task.id, task.lease_token),
            transcript=TRANSCRIPT,
            processing_seconds=9,
            callback_url=None,
            keep_seconds=None,
        )


async def test_heartbeat_extends_and_reports_progress(db: Sessions, task_factory: Factory) -> None:
    await task_factory(db)
    task = await claim_one(db, lease=5)
    assert task is not None and task.lease_token
    lease = Lease(task.id, task.lease_token)
    async with db() as session:
        await queue.heartbeat(session=session, lease=lease, lease_seconds=60, progress=42)
    stored = await load(db, task.id)
    assert stored.progress == 42
    assert stored.lease_expires_at is not None and stored.lease_expires_at - utcnow() > timedelta(seconds=55)
    async with db() as session:
        with pytest.raises(LeaseLost):
            await queue.heartbeat(session=session, lease=Lease(task.id, "other"), lease_seconds=60)


async def test_cancelling_a_running_task_reaches_its_heartbeat(db: Sessions, task_factory: Factory) -> None:
    await task_factory(db)
    task = await claim_one(db)
    assert task is not None and task.lease_token
    async with db() as session:
        cancelled = await cancel_task(session=session, task_id=task.id, owner=None)
    assert cancelled.status == "running" and cancelled.cancel_requested
    async with db() as session:
        with pytest.raises(TaskCancelled):
            await queue.heartbeat(session=session, lease=Lease(task.id, task.lease_token), lease_seconds=60)


async def test_deleting_a_running_task_takes_its_lease(db: Sessions, task_factory: Factory) -> None:
    await task_factory(db)
    task = await claim_one(db)
    assert task is not None and task.lease_token
    async with db() as session:
        await delete_task(session=session, task_id=task.id, owner=None)
    async with db() as session:
        with pytest.raises(TaskDeleted):
            await queue.heartbeat(session=session, lease=Lease(task.id, task.lease_token), lease_seconds=60)
    async with db() as session:
        assert not await queue.complete(
            session=session,
            lease=Lease(task.id, task.lease_token),
            transcript=TRANSCRIPT,
            processing_seconds=1,
            callback_url=None,
            keep_seconds=None,
        )
    async with db() as session:
        assert await session.get(Task, task.id) is None


async def test_reaper_requeues_with_backoff_then_fails(db: Sessions, task_factory: Factory) -> None:
    await task_factory(db, max_attempts=2, callback_url="https://hooks.example.com/x")
    first = await claim_one(db, lease=30)
    assert first is not None
    past = utcnow() - timedelta(seconds=1)
    async with db() as session, session.begin():
        await session.execute(update(Task).values(lease_expires_at=past))
    async with db() as session:
        assert await queue.reap_expired(session=session) == 1
    requeued = await load(db, first.id)
    assert requeued.status == "queued" and requeued.lease_token is None and requeued.attempts == 1
    assert requeued.run_at > utcnow()  # backing off
    async with db() as session, session.begin():
        await session.execute(update(Task).values(run_at=past))
    second = await claim_one(db)
    assert second is not None and second.attempts == 2
    # The first owner's token no longer works.
    async with db() as session:
        assert first.lease_token is not None
        assert not await queue.complete(
            session=session,
            lease=Lease(first.id, first.lease_token),
            transcript=TRANSCRIPT,
            processing_seconds=1,
            callback_url=None,
            keep_seconds=None,
        )
    async with db() as session, session.begin():
        await session.execute(update(Task).values(lease_expires_at=past))
    async with db() as session:
        assert await queue.reap_expired(session=session) == 1
    failed = await load(db, first.id)
    assert failed.status == "failed" and failed.error_type == "LeaseExpired"
    assert failed.error_message and "2 times" in failed.error_message
    async with db() as session:
        events = list(await session.scalars(select(WebhookEvent)))
    assert [(e.event, e.payload["data"]["error"]["type"]) for e in events] == [("task.failed", "LeaseExpired")]


async def test_release_gives_the_task_back_without_spending_an_attempt(db: Sessions, task_factory: Factory) -> None:
    await task_factory(db)
    task = await claim_one(db)
    assert task is not None and task.lease_token
    async with db() as session:
        assert await queue.release(session=session, lease=Lease(task.id, task.lease_token))
    stored = await load(db, task.id)
    assert stored.status == "queued" and stored.attempts == 0 and stored.lease_token is None
    again = await claim_one(db, worker="w2")
    assert again is not None and again.id == task.id


async def test_failure_is_recorded(db: Sessions, task_factory: Factory) -> None:
    await task_factory(db)
    task = await claim_one(db)
    assert task is not None and task.lease_token
    async with db() as session:
        assert await queue.finish_unsuccessfully(
            session=session,
            lease=Lease(task.id, task.lease_token),
            status=TaskStatus.failed,
            error_type="UnreadableMedia",
            message="damaged",
            processing_seconds=0.5,
            callback_url=None,
            keep_seconds=None,
        )
    async with db() as session:
        stored = (await session.scalars(select(Task).where(Task.id == task.id))).one()
    assert (stored.status, stored.error_type, stored.error_message) == ("failed", "UnreadableMedia", "damaged")


async def test_a_completion_after_a_cancel_request_ends_cancelled(db: Sessions, task_factory: Factory) -> None:
    """A worker finishing just as the task is cancelled stores no result: the cancel wins."""
    await task_factory(db, callback_url="https://hooks.example.com/x")
    task = await claim_one(db)
    assert task is not None and task.lease_token
    async with db() as session:
        await cancel_task(session=session, task_id=task.id, owner=None)
    async with db() as session:
        outcome = await queue.complete(
            session=session,
            lease=Lease(task.id, task.lease_token),
            transcript=TRANSCRIPT,
            processing_seconds=1,
            callback_url=task.callback_url,
            keep_seconds=task.delete_after_seconds,
        )
    assert outcome is TaskStatus.cancelled
    stored = await load(db, task.id)
    assert (stored.status, stored.lease_token) == ("cancelled", None)
    assert stored.finished_at is not None
    async with db() as session:
        assert await session.get(TaskResult, task.id) is None
        events = list(await session.scalars(select(WebhookEvent)))
    assert [e.event for e in events] == ["task.cancelled"]


async def test_a_running_task_can_check_for_a_cancel_without_writing(db: Sessions, task_factory: Factory) -> None:
    await task_factory(db)
    task = await claim_one(db)
    assert task is not None and task.lease_token
    lease = Lease(task.id, task.lease_token)
    async with db() as session:
        await queue.check_held(session=session, lease=lease)  # held, not cancelled: no error
        with pytest.raises(LeaseLost):
            await queue.check_held(session=session, lease=Lease(task.id, "other"))
    async with db() as session:
        await cancel_task(session=session, task_id=task.id, owner=None)
    async with db() as session:
        with pytest.raises(TaskCancelled):
            await queue.check_held(session=session, lease=lease)

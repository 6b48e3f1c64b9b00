"""The queue protocol: claim with a lease, heartbeat, complete or fail under a fencing token, reap expired leases."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Task, TaskResult
from app.db.types import utcnow
from app.errors import LeaseLost, TaskCancelled
from app.schemas.tasks import TaskStatus
from app.schemas.transcript import Transcript
from app.services import media

REQUEUE_BASE_SECONDS = 2.0
REQUEUE_MAX_SECONDS = 300.0


@dataclass(frozen=True)
class Lease:
    """Proof that a worker holds a task: every write it makes is conditional on this token."""

    task_id: str
    token: str


async def claim(*, session: AsyncSession, worker_id: str, lease_seconds: float, limit: int = 1) -> list[Task]:
    """Atomically move up to `limit` due tasks from queued to running, highest priority and oldest first."""
    now = utcnow()
    token = str(uuid.uuid4())
    due = (
        select(Task.id)
        .where(Task.status == TaskStatus.queued.value, Task.run_at <= now)
        .order_by(Task.priority, Task.run_at, Task.id)
        .limit(limit)
    )
    claimed = {
        "status": TaskStatus.running.value,
        "lease_token": token,
        "lease_owner": worker_id,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "attempts": Task.attempts + 1,
        "started_at": now,
        "progress": 0,
    }
    async with session.begin():
        if session.get_bind().dialect.name == "sqlite":
            # BEGIN IMMEDIATE (see app.db.engine) already holds the write lock: one statement does it.
            stmt = (
                update(Task)
                .where(Task.id.in_(due.scalar_subquery()), Task.status == TaskStatus.queued.value)
                .values(**claimed)
                .returning(Task)
                .execution_options(synchronize_session=False)
            )
            return list(await session.scalars(stmt))
        ids = list(await session.scalars(due.with_for_update(skip_locked=True)))
        if not ids:
            return []
        await session.execute(
            update(Task)
            .where(Task.id.in_(ids), Task.status == TaskStatus.queued.value)
            .values(**claimed)
            .execution_options(synchronize_session=False)
        )
        rows = await session.scalars(
            select(Task).where(Task.id.in_(ids), Task.lease_token == token).execution_options(populate_existing=True)
        )
        return list(rows)


def _held(lease: Lease) -> list[ColumnElement[bool]]:
    return [Task.id == lease.task_id, Task.lease_token == lease.token, Task.status == TaskStatus.running.value]


async def _update_held(session: AsyncSession, lease: Lease, *where: ColumnElement[bool], **values: object) -> bool:
    """UPDATE the task only while `lease` still holds it; returns whether it did."""
    result = await session.execute(
        update(Task).where(*_held(lease), *where).values(**values).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _lease_ended(status: TaskStatus) -> dict[str, object]:
    return {"status": status.value, "finished_at": utcnow(), "lease_token": None, "lease_expires_at": None}


async def heartbeat(*, session: AsyncSession, lease: Lease, lease_seconds: float, progress: int | None = None) -> None:
    """Extend the lease (and record progress); raise if the task was cancelled or is no longer ours."""
    values: dict[str, object] = {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
    if progress is not None:
        values["progress"] = max(0, min(100, progress))
    async with session.begin():
        if await _update_held(session, lease, Task.cancel_requested.is_(False), **values):
            return
        cancelled = await session.scalar(select(Task.cancel_requested).where(*_held(lease)))
    if cancelled:
        raise TaskCancelled(f"task {lease.task_id} was cancelled")
    raise LeaseLost(f"task {lease.task_id} is no longer held by this worker")


async def complete(*, session: AsyncSession, lease: Lease, transcript: Transcript, processing_seconds: float) -> bool:
    """Store the result and mark the task completed, only if the lease is still ours. Returns whether it was."""
    async with session.begin():
        done = await _update_held(
            session,
            lease,
            **_lease_ended(TaskStatus.completed),
            progress=100,
            processing_seconds=processing_seconds,
            language=transcript.language,
        )
        if not done:
            return False
        session.add(
            TaskResult(
                task_id=lease.task_id,
                text=transcript.text,
                language=transcript.language,
                language_probability=transcript.language_probability,
                duration=transcript.duration,
                segments=[segment.model_dump(exclude_none=True) for segment in transcript.segments],
            )
        )
        await media.delete_media(session=session, task_id=lease.task_id)
    return True


async def finish_unsuccessfully(
    *,
    session: AsyncSession,
    lease: Lease,
    status: TaskStatus,
    error_type: str | None,
    message: str | None,
    processing_seconds: float | None,
) -> bool:
    """Mark the task failed or cancelled (only if the lease is still ours) and drop its media."""
    async with session.begin():
        done = await _update_held(
            session,
            lease,
            **_lease_ended(status),
            error_type=error_type,
            error_message=message,
            processing_seconds=processing_seconds,
        )
        if done:
            await media.delete_media(session=session, task_id=lease.task_id)
    return done


async def release(*, session: AsyncSession, lease: Lease) -> bool:
    """Give a task back to the queue at once (graceful shutdown); the attempt does not count."""
    async with session.begin():
        return await _update_held(
            session,
            lease,
            status=TaskStatus.queued.value,
            lease_token=None,
            lease_owner=None,
            lease_expires_at=None,
            attempts=Task.attempts - 1,
            run_at=utcnow(),
            progress=0,
        )


def requeue_delay(attempts: int) -> float:
    """Exponential backoff with full jitter for a task whose worker vanished."""
    ceiling = min(REQUEUE_MAX_SECONDS, REQUEUE_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


async def reap_expired(*, session: AsyncSession, now: datetime | None = None, limit: int = 100) -> int:
    """Requeue running tasks whose lease expired, or fail them when out of attempts. Returns how many."""
    now = now or utcnow()
    async with session.begin():
        expired = list(
            await session.scalars(
                select(Task)
                .where(Task.status == TaskStatus.running.value, Task.lease_expires_at < now)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        for task in expired:
            stale = [Task.id == task.id, Task.lease_token == task.lease_token]
            if task.cancel_requested:
                values: dict[str, object] = {"status": TaskStatus.cancelled.value, "finished_at": now}
            elif task.attempts >= task.max_attempts:
                values = {
                    "status": TaskStatus.failed.value,
                    "finished_at": now,
                    "error_type": "LeaseExpired",
                    "error_message": f"The worker running this task stopped responding {task.attempts} times; "
                    "giving up.",
                }
            else:
                values = {
                    "status": TaskStatus.queued.value,
                    "run_at": now + timedelta(seconds=requeue_delay(task.attempts)),
                    "progress": 0,
                }
            await session.execute(
                update(Task)
                .where(*stale)
                .values(lease_token=None, lease_owner=None, lease_expires_at=None, **values)
                .execution_options(synchronize_session=False)
            )
            if values["status"] != TaskStatus.queued.value:
                await media.delete_media(session=session, task_id=task.id)
    return len(expired)


async def attach_media(*, session: AsyncSession, lease: Lease, audio: media.DecodedMedia) -> bool:
    """Store audio a worker fetched for a URL task, so a retry elsewhere need not fetch it again."""
    async with session.begin():
        done = await _update_held(session, lease, media_duration=audio.duration, media_bytes=audio.size)
        if done:
            await media.store_media(session=session, task_id=lease.task_id, path=audio.path)
    return done

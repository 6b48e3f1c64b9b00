"""The queue protocol: claim with a lease, heartbeat, complete or fail under a fencing token, reap expired leases."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from app.db.models import TASK_PARTIALS, TASK_RESULTS, TASKS, Task
from app.db.retry import retry_transient, retrying
from app.db.types import utcnow
from app.errors import LeaseExpired, LeaseLost, TaskCancelled, TaskDeleted
from app.schemas.tasks import TaskStatus
from app.schemas.transcript import Segment, Transcript
from app.services import media, outbox

log = logging.getLogger(__name__)
REQUEUE_BASE_SECONDS = 2.0
REQUEUE_MAX_SECONDS = 300.0


@dataclass(frozen=True)
class Lease:
    """Proof that a worker holds a task: every write it makes is conditional on this token."""

    task_id: str
    token: str


async def claim(*, session: AsyncSession, worker_id: str, lease_seconds: float, limit: int = 1) -> list[Task]:
    """Atomically move up to `limit` due tasks from queued to running, highest priority and oldest first.

    Transient errors are retried. If a connection drops after the claim committed, the retry finds the claimed
    tasks by this call's token, so they are neither lost nor left running until their lease expires.
    """
    token = str(uuid.uuid4())

    async def attempt(number: int) -> list[Task]:
        if number > 0:
            async with session.begin():
                mine = list(await session.scalars(_with_token(token)))
            if mine:
                log.warning("claim of %d task(s) committed before the connection dropped; kept", len(mine))
                return mine
        return await _claim_once(session, worker_id=worker_id, lease_seconds=lease_seconds, limit=limit, token=token)

    return await retrying(session, attempt)


def _with_token(token: str) -> Select[Task]:
    return select(Task).where(Task.lease_token == token).execution_options(populate_existing=True)


async def _claim_once(
    session: AsyncSession, *, worker_id: str, lease_seconds: float, limit: int, token: str
) -> list[Task]:
    now = utcnow()
    due = (
        select(Task)
        .where(Task.status == TaskStatus.queued.value, Task.run_at <= now)
        .order_by(Task.priority, Task.run_at, Task.id)
        .limit(limit)
    )
    claimed: dict[str, Any] = {
        "status": TaskStatus.running.value,
        "lease_token": token,
        "lease_owner": worker_id,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "started_at": now,
        "progress": 0,
    }
    async with session.begin():
        if session.get_bind().dialect.name == "sqlite":
            # BEGIN IMMEDIATE (see app.db.engine) already holds the write lock: one statement does it.
            stmt = (
                update(Task)
                .where(Task.id.in_(due.with_only_columns(Task.id).scalar_subquery()))
                .values(**claimed, attempts=Task.attempts + 1)
                .returning(Task)
                .execution_options(synchronize_session=False)
            )
            return list(await session.scalars(stmt))
        # MySQL/MariaDB: lock the due rows others have not locked, then mark them; the rows are ours until COMMIT.
        rows = list(
            await session.scalars(due.with_for_update(skip_locked=True).execution_options(populate_existing=True))
        )
        if not rows:
            return []
        await session.execute(
            update(TASKS).where(TASKS.c.id.in_([t.id for t in rows])).values(**claimed, attempts=TASKS.c.attempts + 1)
        )
        for task in rows:
            for key, value in (*claimed.items(), ("attempts", task.attempts + 1)):
                set_committed_value(task, key, value)
        return rows


def _held(lease: Lease) -> list[ColumnElement[bool]]:
    return [TASKS.c.id == lease.task_id, TASKS.c.lease_token == lease.token, TASKS.c.status == TaskStatus.running.value]


async def _update_held(session: AsyncSession, lease: Lease, *where: ColumnElement[bool], **values: object) -> bool:
    """UPDATE the task only while `lease` still holds it; returns whether it did."""
    result = await session.execute(update(TASKS).where(*_held(lease), *where).values(**values))
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def deletion_time(finished_at: datetime, keep_seconds: int | None) -> datetime | None:
    """When a task that finished at `finished_at` is deleted: `keep_seconds` (its `delete_after_seconds`) later, or
    never (None)."""
    return finished_at + timedelta(seconds=keep_seconds) if keep_seconds else None


def _lease_ended(status: TaskStatus, keep_seconds: int | None) -> dict[str, object]:
    now = utcnow()
    return {
        "status": status.value,
        "finished_at": now,
        "delete_at": deletion_time(now, keep_seconds),
        "lease_token": None,
        "lease_expires_at": None,
    }


async def heartbeat(
    *,
    session: AsyncSession,
    lease: Lease,
    lease_seconds: float,
    progress: int | None = None,
    segments: Sequence[Segment] = (),
) -> None:
    """Extend the lease, record progress and new segments; raise if the task was cancelled or is no longer ours.

    Transient errors are retried; segments a try committed before its connection dropped are not stored twice.
    """
    values: dict[str, object] = {"lease_expires_at": utcnow() + timedelta(seconds=lease_seconds)}
    if progress is not None:
        values["progress"] = max(0, min(100, progress))
    rows = [{"task_id": lease.task_id, "seq": s.id, "segment": s.model_dump(exclude_none=True)} for s in segments]

    async def attempt(number: int) -> bool | None:
        async with session.begin():
            if await _update_held(session, lease, TASKS.c.cancel_requested.is_(False), **values):
                if rows and number > 0:
                    stored = TASK_PARTIALS.c.seq.in_([row["seq"] for row in rows])
                    again = await session.execute(
                        delete(TASK_PARTIALS).where(TASK_PARTIALS.c.task_id == lease.task_id, stored)
                    )
                    if again.rowcount:  # type: ignore[attr-defined]
                        log.warning("task %s: segments committed before the connection dropped", lease.task_id)
                if rows:
                    await session.execute(insert(TASK_PARTIALS), rows)
                return None
            return bool(await session.scalar(select(TASKS.c.cancel_requested).where(*_held(lease))))

    cancelled = await retrying(session, attempt)
    if cancelled is None:
        return
    if cancelled:
        raise TaskCancelled(f"task {lease.task_id} was cancelled")
    if await _gone_now(session, lease):
        raise TaskDeleted(f"task {lease.task_id} was deleted")
    raise LeaseLost(f"task {lease.task_id} is no longer held by this worker")


async def _gone_now(session: AsyncSession, lease: Lease) -> bool:
    """Whether the task a worker lost was deleted (a user's action) rather than taken over or expired."""
    async with session.begin():
        return await session.scalar(select(TASKS.c.id).where(TASKS.c.id == lease.task_id)) is None


@retry_transient
async def was_deleted(*, session: AsyncSession, lease: Lease) -> bool:
    """Whether a task whose outcome could not be recorded was deleted meanwhile (rather than taken over)."""
    return await _gone_now(session, lease)


@retry_transient
async def check_held(*, session: AsyncSession, lease: Lease) -> None:
    """Raise TaskCancelled if a cancel was requested, LeaseLost if the task is no longer ours; one indexed read, so
    a worker can ask every second without writing."""
    async with session.begin():
        cancelled = await session.scalar(select(TASKS.c.cancel_requested).where(*_held(lease)))
    if cancelled is None:
        if await _gone_now(session, lease):
            raise TaskDeleted(f"task {lease.task_id} was deleted")
        raise LeaseLost(f"task {lease.task_id} is no longer held by this worker")
    if cancelled:
        raise TaskCancelled(f"task {lease.task_id} was cancelled")


def result_columns(transcript: Transcript) -> dict[str, Any]:
    """A transcript as `task_results` columns."""
    return {
        "text": transcript.text,
        "language": transcript.language,
        "language_probability": transcript.language_probability,
        "duration": transcript.duration,
        "segments": [segment.model_dump(exclude_none=True) for segment in transcript.segments],
    }


async def complete(
    *,
    session: AsyncSession,
    lease: Lease,
    transcript: Transcript,
    processing_seconds: float,
    callback_url: str | None,
    keep_seconds: int | None,
    reused_from: str | None = None,
) -> TaskStatus | None:
    """Store the result and mark the task completed, only if the lease is still ours; returns the status it ended
    with: completed, cancelled (a cancel was requested meanwhile: the result is dropped) or None (not ours).

    The result row, the media cleanup and the webhook event (when `callback_url`) commit together. `keep_seconds`
    is the task's `delete_after_seconds` (when it is deleted, counted from now). `reused_from` names the completed
    task whose result this is (deduplication). Transient errors are retried; a completion that committed before its
    connection dropped is recognised by its lease token (kept on the completed task).
    """

    async def attempt(number: int) -> TaskStatus | None:
        if number > 0:
            async with session.begin():
                mine = await session.scalar(
                    select(TASKS.c.id).where(
                        TASKS.c.id == lease.task_id,
                        TASKS.c.lease_token == lease.token,
                        TASKS.c.status == TaskStatus.completed.value,
                    )
                )
            if mine:
                log.warning("task %s: completion committed before the connection dropped; kept", lease.task_id)
                return TaskStatus.completed
        return await _complete_once(
            session, lease, transcript, processing_seconds, callback_url, keep_seconds, reused_from
        )

    return await retrying(session, attempt)


async def _complete_once(
    session: AsyncSession,
    lease: Lease,
    transcript: Transcript,
    processing_seconds: float,
    callback_url: str | None,
    keep_seconds: int | None,
    reused_from: str | None,
) -> TaskStatus | None:
    async with session.begin():
        done = await _update_held(
            session,
            lease,
            TASKS.c.cancel_requested.is_(False),
            # The token stays as the mark of the run that completed it, so that run's retry can recognise its own
            # commit; it fences nothing any more, as every write under a lease also needs status `running`.
            **{**_lease_ended(TaskStatus.completed, keep_seconds), "lease_token": lease.token},
            progress=100,
            processing_seconds=processing_seconds,
            language=transcript.language,
            reused_from=reused_from,
        )
        if not done:
            # Cancelled while it ran: the cancel wins over a completion that raced it.
            cancelled = await _end_unsuccessfully(
                session,
                lease,
                TASKS.c.cancel_requested.is_(True),
                status=TaskStatus.cancelled,
                error_type=None,
                message=None,
                processing_seconds=processing_seconds,
                callback_url=callback_url,
                keep_seconds=keep_seconds,
            )
            return TaskStatus.cancelled if cancelled else None
        await session.execute(insert(TASK_RESULTS).values(task_id=lease.task_id, **result_columns(transcript)))
        await media.delete_media(session=session, task_id=lease.task_id)
        await clear_partials(session=session, task_id=lease.task_id)
        await outbox.record_event(
            session=session,
            task_id=lease.task_id,
            status=TaskStatus.completed,
            callback_url=callback_url,
            transcript=transcript,
        )
    return TaskStatus.completed


@retry_transient
async def finish_unsuccessfully(
    *,
    session: AsyncSession,
    lease: Lease,
    status: TaskStatus,
    error_type: str | None,
    message: str | None,
    processing_seconds: float | None,
    callback_url: str | None,
    keep_seconds: int | None,
) -> bool:
    """Mark the task failed or cancelled (only if the lease is still ours), drop its media, queue its event;
    `keep_seconds` as for `complete`."""
    async with session.begin():
        return await _end_unsuccessfully(
            session,
            lease,
            status=status,
            error_type=error_type,
            message=message,
            processing_seconds=processing_seconds,
            callback_url=callback_url,
            keep_seconds=keep_seconds,
        )


async def _end_unsuccessfully(
    session: AsyncSession,
    lease: Lease,
    *where: ColumnElement[bool],
    status: TaskStatus,
    error_type: str | None,
    message: str | None,
    processing_seconds: float | None,
    callback_url: str | None,
    keep_seconds: int | None,
) -> bool:
    """finish_unsuccessfully's work inside the caller's transaction."""
    done = await _update_held(
        session,
        lease,
        *where,
        **_lease_ended(status, keep_seconds),
        error_type=error_type,
        error_message=message,
        processing_seconds=processing_seconds,
    )
    if done:
        await media.delete_media(session=session, task_id=lease.task_id)
        await clear_partials(session=session, task_id=lease.task_id)
        await outbox.record_event(
            session=session,
            task_id=lease.task_id,
            status=status,
            callback_url=callback_url,
            error=(error_type, message or "") if error_type else None,
        )
    return done


@retry_transient
async def release(*, session: AsyncSession, lease: Lease) -> bool:
    """Give a task back to the queue at once (graceful shutdown); the attempt does not count."""
    async with session.begin():
        released = await _update_held(
            session,
            lease,
            status=TaskStatus.queued.value,
            lease_token=None,
            lease_owner=None,
            lease_expires_at=None,
            attempts=TASKS.c.attempts - 1,
            run_at=utcnow(),
            progress=0,
        )
        if released:
            await clear_partials(session=session, task_id=lease.task_id)
    return released


async def clear_partials(*, session: AsyncSession, task_id: str) -> None:
    """Drop the streamed segments of a run that ended (part of the caller's transaction)."""
    await session.execute(delete(TASK_PARTIALS).where(TASK_PARTIALS.c.task_id == task_id))


def requeue_delay(attempts: int) -> float:
    """Exponential backoff with full jitter for a task whose worker vanished."""
    ceiling = min(REQUEUE_MAX_SECONDS, REQUEUE_BASE_SECONDS * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


def _reaped(task: Task, now: datetime) -> tuple[TaskStatus, dict[str, object]]:
    """What becomes of a task whose lease expired: cancelled, failed (out of attempts) or queued again."""
    finished: dict[str, object] = {"finished_at": now, "delete_at": deletion_time(now, task.delete_after_seconds)}
    if task.cancel_requested:
        return TaskStatus.cancelled, finished
    if task.attempts >= task.max_attempts:
        return TaskStatus.failed, {
            **finished,
            "error_type": LeaseExpired.__name__,
            "error_message": f"The worker running this task stopped responding {task.attempts} times; giving up.",
        }
    return TaskStatus.queued, {"run_at": now + timedelta(seconds=requeue_delay(task.attempts)), "progress": 0}


@retry_transient
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
            outcome, values = _reaped(task, now)
            await clear_partials(session=session, task_id=task.id)
            await session.execute(
                update(TASKS)
                .where(TASKS.c.id == task.id, TASKS.c.lease_token == task.lease_token)
                .values(status=outcome.value, lease_token=None, lease_owner=None, lease_expires_at=None, **values)
            )
            if outcome is not TaskStatus.queued:
                await media.delete_media(session=session, task_id=task.id)
                error = values.get("error_type"), values.get("error_message")
                await outbox.record_event(
                    session=session,
                    task_id=task.id,
                    status=outcome,
                    callback_url=task.callback_url,
                    error=(str(error[0]), str(error[1])) if error[0] else None,
                )
    return len(expired)


@retry_transient
async def attach_media(
    *,
    session: AsyncSession,
    lease: Lease,
    audio: media.DecodedMedia,
    source_meta: dict[str, Any] | None,
    content_hash: str | None,
) -> bool:
    """Store audio (and page metadata) a worker fetched for a URL task, so a retry elsewhere need not fetch again."""
    async with session.begin():
        done = await _update_held(
            session,
            lease,
            media_duration=audio.duration,
            media_bytes=audio.size,
            source_meta=source_meta,
            content_hash=content_hash,
        )
        if done:
            await media.store_media(session=session, task_id=lease.task_id, path=audio.path)
    return done

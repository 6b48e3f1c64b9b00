"""Retention: a finished task is deleted with everything it owns once its `delete_at` passes (its
`delete_after_seconds` after it finished), by one worker at a time (the `retention` chore), in short transactions.

A task takes its retention when it is created (its own `delete_after_seconds`, else WHISPER_RETENTION_SECONDS) and
gets `delete_at` when it finishes. A finished task with none (it finished while the server kept tasks for ever, or
on a node without the setting) gets one from the purging worker's WHISPER_RETENTION_SECONDS, counted from its finish.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import TASKS, WEBHOOK_OUTBOX
from app.db.retry import retry_transient
from app.db.types import utcnow
from app.services import chores, queue
from app.services import tasks as task_service

BATCH = 200
"""Tasks per transaction: each holds its rows (on SQLite the whole database) for milliseconds, so claims and
completions never wait long behind a purge (bench/queue.py measures claim latency during one)."""


async def purge(
    *, session: AsyncSession, holder: str, retention_seconds: int, lease_seconds: float, budget_seconds: float
) -> int | None:
    """Delete tasks past their deletion time, BATCH per transaction, for about `budget_seconds` (a batch at least),
    if any are due and no other worker has the turn (None then). Returns how many were deleted; the rest wait for
    the next call. Between batches the database is left to others for as long as the batch held it."""
    if not await _work_waiting(session=session, retention_seconds=retention_seconds, now=utcnow()):
        return 0
    if not await chores.take_turn(session=session, chore=chores.RETENTION, holder=holder, lease_seconds=lease_seconds):
        return None
    deadline = time.monotonic() + budget_seconds
    if retention_seconds:
        schedule = functools.partial(
            _schedule, session=session, holder=holder, lease_seconds=lease_seconds, retention_seconds=retention_seconds
        )
        await _in_batches(schedule, deadline)
    delete = functools.partial(_delete_due, session=session, holder=holder, lease_seconds=lease_seconds)
    return await _in_batches(delete, deadline)


async def _in_batches(batch: Callable[[], Awaitable[int | None]], deadline: float) -> int:
    """Run `batch` (at least once) until it does less than a full batch, the turn is lost (None) or the deadline
    passes; the total it did."""
    total = 0
    while True:
        started = time.monotonic()
        count = await batch()
        total += count or 0
        if count is None or count < BATCH or time.monotonic() >= deadline:
            return total
        await asyncio.sleep(time.monotonic() - started)


@retry_transient
async def _work_waiting(*, session: AsyncSession, retention_seconds: int, now: datetime) -> bool:
    """Whether a task is due, or (with a server retention) a finished one has no deletion time: one indexed read,
    so idle workers never write to look."""
    async with session.begin():
        if await session.scalar(select(TASKS.c.id).where(*_due(now)).limit(1)):
            return True
        return bool(retention_seconds) and bool(await session.scalar(_unscheduled(now).limit(1)))


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Past its deletion time, and no webhook event of it still waiting for delivery (a receiver that is down
    gets its retries; the task goes once each event is delivered or has failed for good)."""
    pending = select(WEBHOOK_OUTBOX.c.id).where(
        WEBHOOK_OUTBOX.c.task_id == TASKS.c.id, WEBHOOK_OUTBOX.c.status == "pending"
    )
    return TASKS.c.delete_at <= now, ~pending.exists()


def _unscheduled(now: datetime) -> Select[Any]:
    """Finished tasks without a deletion time (a range of ix_tasks_delete_at)."""
    return select(TASKS.c.id, TASKS.c.finished_at, TASKS.c.delete_after_seconds).where(
        TASKS.c.delete_at.is_(None), TASKS.c.finished_at <= now
    )


@retry_transient
async def _schedule(*, session: AsyncSession, holder: str, lease_seconds: float, retention_seconds: int) -> int | None:
    """Give up to BATCH finished tasks without a deletion time one: finish + (their own retention or the server's)."""
    now = utcnow()
    async with session.begin():
        if not await chores.keep_turn(
            session=session, chore=chores.RETENTION, holder=holder, lease_seconds=lease_seconds, now=now
        ):
            return None
        rows = (await session.execute(_unscheduled(now).order_by(TASKS.c.finished_at).limit(BATCH))).all()
        if rows:
            await session.execute(
                update(TASKS).where(TASKS.c.id == bindparam("b_id")).values(delete_at=bindparam("b_delete_at")),
                [
                    {"b_id": task_id, "b_delete_at": queue.deletion_time(finished, own or retention_seconds)}
                    for task_id, finished, own in rows
                ],
            )
    return len(rows)


@retry_transient
async def _delete_due(*, session: AsyncSession, holder: str, lease_seconds: float) -> int | None:
    """Delete up to BATCH tasks whose deletion time has passed (the one way tasks are deleted: `remove_tasks`), and
    count them; None if the turn is no longer `holder`'s."""
    now = utcnow()
    async with session.begin():
        if not await chores.keep_turn(
            session=session, chore=chores.RETENTION, holder=holder, lease_seconds=lease_seconds, now=now
        ):
            return None
        due = (
            await session.execute(
                select(TASKS.c.id, TASKS.c.owner)
                .where(*_due(now))
                .order_by(TASKS.c.delete_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)  # a task being deleted by its owner right now is left to them
            )
        ).all()
        if due:
            await task_service.remove_tasks(session=session, tasks=[(task_id, owner) for task_id, owner in due])
            await chores.keep_turn(
                session=session,
                chore=chores.RETENTION,
                holder=holder,
                lease_seconds=lease_seconds,
                now=now,
                done=len(due),
            )
    return len(due)

"""Waiting for a task in the request that created it (the OpenAI-compatible routes): its result, or its segments as
the worker stores them; a task nobody waits for any more is cancelled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import errors
from app.db.models import Task, TaskPartial
from app.errors import AppError, TranscriptionFailed
from app.schemas.tasks import FINISHED
from app.schemas.transcript import Segment, Transcript
from app.services import tasks as task_service

log = logging.getLogger(__name__)
WAIT_POLL_SECONDS = 0.05
Sessions = async_sessionmaker[AsyncSession]


async def _status(sessions: Sessions, task_id: str) -> Task:
    async with sessions() as session:
        return await task_service.get_task(session=session, task_id=task_id, owner=None)


async def _result(sessions: Sessions, task: Task) -> Transcript:
    if task.status == "completed":
        async with sessions() as session:
            return await task_service.get_result(session=session, task=task)
    # a worker's own error (ModelUnavailable, UnreadableMedia...) keeps its class: its status and type reach clients
    known = getattr(errors, task.error_type or "", None)
    if (
        task.status == "failed"
        and isinstance(known, type)
        and issubclass(known, AppError)
        and known.__init__ is AppError.__init__  # takes the stored message alone
    ):
        raise known(task.error_message)
    raise TranscriptionFailed(f"Transcription {task.status}: {task.error_message or 'no result'}")


async def cancel_abandoned(sessions: Sessions, task_id: str) -> None:
    """Cancel a task whose requester went away (nothing if it finished meanwhile)."""
    async with sessions() as session:
        try:
            await task_service.cancel_task(session=session, task_id=task_id, owner=None)
            log.info("task %s: cancelled, the client disconnected", task_id)
        except AppError:
            pass  # finished meanwhile


async def wait_for_result(
    sessions: Sessions, task_id: str, *, disconnected: Callable[[], Awaitable[bool]]
) -> Transcript | None:
    """Poll until the task ends; cancel it and return None if the client disconnects first."""
    while True:
        task = await _status(sessions, task_id)
        if task.status in FINISHED:
            return await _result(sessions, task)
        if await disconnected():
            await cancel_abandoned(sessions, task_id)
            return None
        await asyncio.sleep(WAIT_POLL_SECONDS)


async def follow_segments(sessions: Sessions, task_id: str) -> AsyncGenerator[Segment | Transcript, None]:
    """Each segment as the worker stores it, then the whole transcript; a failure raises (AppError)."""
    sent = 0
    finished = False
    try:
        while True:
            task = await _status(sessions, task_id)
            if task.status in FINISHED:
                finished = True
                transcript = await _result(sessions, task)
                for segment in transcript.segments[sent:]:
                    yield segment
                yield transcript
                return
            async with sessions() as session:
                rows = await session.scalars(
                    select(TaskPartial.segment)
                    .where(TaskPartial.task_id == task_id, TaskPartial.seq >= sent)
                    .order_by(TaskPartial.seq)
                )
                fresh = [Segment.model_validate(row) for row in rows]
            for segment in fresh:
                yield segment
            sent += len(fresh)
            await asyncio.sleep(WAIT_POLL_SECONDS * 4)
    except AppError:
        finished = True
        raise
    finally:
        if not finished:
            await cancel_abandoned(sessions, task_id)

"""Server-sent events: task status and progress as they change, for one task or all of a key's tasks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.deps import PrincipalDep, SessionDep
from app.api.routes.tasks import TaskId, summary_of
from app.db.models import Task
from app.db.types import utcnow
from app.schemas.tasks import FINISHED, TaskStatus
from app.services import tasks as task_service

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
SSE_DESCRIPTION = (
    "`text/event-stream`. A `task` event carries the task as `GET /v1/tasks` lists it, each time its status, "
    'progress, attempts or error change; `deleted` carries `{"id"}`; a comment line every 15 s keeps proxies from '
    "closing the stream. Browsers' EventSource cannot send an Authorization header: read the stream with fetch()."
)


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"


async def _stream(
    sessions: async_sessionmaker[AsyncSession], *, owner: str | None, task_id: str | None
) -> AsyncIterator[str]:
    """Poll the database and emit what changed; a single task's stream ends once it has finished."""
    sent: dict[str, tuple[object, ...]] = {}
    since = utcnow() - timedelta(seconds=5)
    last_write = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        async with sessions() as session:
            query = select(Task)
            if task_id is not None:
                query = query.where(Task.id == task_id)
            else:
                unfinished = Task.status.in_([TaskStatus.queued.value, TaskStatus.running.value])
                query = query.where(or_(unfinished, Task.finished_at >= since))
            if owner is not None:
                query = query.where(Task.owner == owner)
            tasks = list(await session.scalars(query.execution_options(populate_existing=True)))
            await session.commit()
        seen = {task.id for task in tasks}
        for task in tasks:
            state = (task.status, task.progress, task.attempts, task.error_type)
            if sent.get(task.id) != state:
                sent[task.id] = state
                yield _event("task", summary_of(task).model_dump(mode="json"))
                last_write = time.monotonic()
        for gone in [known for known in sent if known not in seen]:  # deleted meanwhile
            del sent[gone]
            yield _event("deleted", {"id": gone})
            last_write = time.monotonic()
        if task_id is not None and (not tasks or tasks[0].status in FINISHED):
            return
        if time.monotonic() - last_write > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_write = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)


def _response(stream: AsyncIterator[str]) -> StreamingResponse:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


@router.get(
    "/events",
    summary="Follow every task (SSE)",
    description="Status and progress of the caller's unfinished tasks, and of those that finish while the stream "
    "is open. " + SSE_DESCRIPTION,
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def all_task_events(request: Request, principal: PrincipalDep) -> StreamingResponse:
    """A stream of task changes."""
    return _response(_stream(request.app.state.sessions, owner=principal.scope, task_id=None))


@router.get(
    "/{task_id}/events",
    summary="Follow one task (SSE)",
    description="The task's status and progress as they change; the stream ends when the task has finished. "
    + SSE_DESCRIPTION,
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 404: {"description": "No such task."}},
)
async def task_events(
    task_id: TaskId, request: Request, session: SessionDep, principal: PrincipalDep
) -> StreamingResponse:
    """A stream of one task's changes."""
    await task_service.get_task(session=session, task_id=task_id, owner=principal.scope)
    await session.commit()
    return _response(_stream(request.app.state.sessions, owner=principal.scope, task_id=task_id))

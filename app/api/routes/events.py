"""Server-sent events: task status and progress as they change, for one task or all of a key's tasks."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Receive, Scope, Send

from app.api.deps import PrincipalDep, SessionDep, TaskId
from app.schemas.tasks import TaskSummary
from app.services import tasks as task_service
from app.services.auth import Principal
from app.services.events import StreamSlots, TaskWatch

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
SSE_DESCRIPTION = (
    "`text/event-stream`. A `task` event carries the task as `GET /v1/tasks` lists it, each time its status, "
    'progress, attempts or error change; `deleted` carries `{"id"}`; a comment line every 15 s keeps proxies from '
    "closing the stream. Browsers' EventSource cannot send an Authorization header: read the stream with fetch(). "
    "A key may hold WHISPER_MAX_EVENT_STREAMS streams open per API node (429 past it)."
)
STREAM_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
    429: {"description": "Too many open streams for this key."},
}


def _event(name: str, data: object) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str, separators=(',', ':'))}\n\n"


async def _stream(sessions: async_sessionmaker[AsyncSession], watch: TaskWatch) -> AsyncGenerator[str, None]:
    """Poll and emit what changed; a single task's stream ends once it has finished."""
    last_write = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        async with sessions() as session:
            changes = await watch.poll(session)
            await session.commit()
        for task in changes.tasks:
            yield _event("task", TaskSummary.from_task(task).model_dump(mode="json"))
            last_write = time.monotonic()
        for gone in changes.deleted:
            yield _event("deleted", {"id": gone})
            last_write = time.monotonic()
        if changes.finished:
            return
        if time.monotonic() - last_write > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_write = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)


class EventStream(StreamingResponse):
    """An SSE response holding one of its key's stream slots until it ends, however it ends."""

    def __init__(self, stream: AsyncGenerator[str, None], slots: StreamSlots, key: str) -> None:
        slots.take(key)
        self._slots, self._key = slots, key
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        self._stream = stream
        super().__init__(stream, media_type="text/event-stream", headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slots.give_back(self._key)
            await self._stream.aclose()


def _open(request: Request, principal: Principal, task_id: str | None) -> EventStream:
    watch = TaskWatch(owner=principal.scope, task_id=task_id)
    slots: StreamSlots = request.app.state.stream_slots
    key = principal.name or (request.client.host if request.client else "anonymous")
    return EventStream(_stream(request.app.state.sessions, watch), slots, key)


@router.get(
    "/events",
    summary="Follow every task (SSE)",
    description="Status and progress of the caller's unfinished tasks, and of those that finish while the stream "
    "is open. " + SSE_DESCRIPTION,
    response_class=StreamingResponse,
    responses=STREAM_RESPONSES,
)
async def all_task_events(request: Request, principal: PrincipalDep) -> StreamingResponse:
    """A stream of task changes."""
    return _open(request, principal, None)


@router.get(
    "/{task_id}/events",
    summary="Follow one task (SSE)",
    description="The task's status and progress as they change; the stream ends when the task has finished. "
    + SSE_DESCRIPTION,
    response_class=StreamingResponse,
    responses={**STREAM_RESPONSES, 404: {"description": "No such task."}},
)
async def task_events(
    task_id: TaskId, request: Request, session: SessionDep, principal: PrincipalDep
) -> StreamingResponse:
    """A stream of one task's changes."""
    await task_service.get_task(session=session, task_id=task_id, owner=principal.scope)
    await session.commit()
    return _open(request, principal, task_id)

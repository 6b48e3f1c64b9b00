"""The webhook outbox: an event row written in the same transaction as the status change it announces.

Delivery (signing, retries, the attempt log) is the dispatcher's job (issue 5); writing the row here is what makes
"exactly one event per status change" hold even when a worker dies right after committing. The body is built here,
once, from the task as that transaction leaves it, in the shape the task chose (`callback_body`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import WEBHOOK_OUTBOX, Task
from app.db.types import utcnow
from app.schemas import evl
from app.schemas.tasks import CallbackPayload, TaskDetail, TaskStatus
from app.schemas.transcript import Transcript


def callback_body(
    task: Task,
    *,
    status: TaskStatus,
    transcript: Transcript | None,
    error: tuple[str, str] | None,
    now: datetime,
) -> dict[str, Any]:
    """The body of a task's callback, in the shape the task asked for (CallbackPayload): the short event, the event
    with the full task, or the evl API's task object."""
    kind = CallbackPayload(task.callback_payload or CallbackPayload.event)
    if kind is CallbackPayload.evl:
        return evl.task_object(task, transcript, base_url="")
    if kind is CallbackPayload.full:
        data: dict[str, Any] = TaskDetail.of(task, transcript).model_dump(mode="json")
    else:
        data = {"task_id": task.id, "status": status.value}
        if transcript is not None:
            data["text"] = transcript.text
        if error is not None:
            data["error"] = {"type": error[0], "message": error[1]}
    return {"type": f"task.{status.value}", "timestamp": now.isoformat(), "data": data}


async def record_event(
    *,
    session: AsyncSession,
    task_id: str,
    status: TaskStatus,
    callback_url: str | None,
    transcript: Transcript | None = None,
    error: tuple[str, str] | None = None,
) -> None:
    """Queue a `task.<status>` event when the task has a callback_url; part of the caller's transaction (whose
    changes to the task are read back, so the body shows the task as it ends)."""
    if not callback_url:
        return
    await session.flush()
    task = await session.scalar(select(Task).where(Task.id == task_id).execution_options(populate_existing=True))
    if task is None:  # deleted meanwhile: nobody to tell
        return
    now = utcnow()
    await session.execute(
        insert(WEBHOOK_OUTBOX).values(
            id=f"msg_{uuid.uuid4().hex}",
            task_id=task_id,
            event=f"task.{status.value}",
            url=callback_url,
            payload=callback_body(task, status=status, transcript=transcript, error=error, now=now),
            status="pending",
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
    )

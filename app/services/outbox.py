"""The webhook outbox: an event row written in the same transaction as the status change it announces.

Delivery (signing, retries, the attempt log) is the dispatcher's job (issue 5); writing the row here is what makes
"exactly one event per status change" hold even when a worker dies right after committing.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import WEBHOOK_OUTBOX
from app.db.types import utcnow
from app.schemas.tasks import TaskStatus


async def record_event(
    *,
    session: AsyncSession,
    task_id: str,
    status: TaskStatus,
    callback_url: str | None,
    text: str | None = None,
    error: tuple[str, str] | None = None,
) -> None:
    """Queue a `task.<status>` event when the task has a callback_url; part of the caller's transaction."""
    if not callback_url:
        return
    now = utcnow()
    data: dict[str, Any] = {"task_id": task_id, "status": status.value}
    if text is not None:
        data["text"] = text
    if error is not None:
        data["error"] = {"type": error[0], "message": error[1]}
    await session.execute(
        insert(WEBHOOK_OUTBOX).values(
            id=f"msg_{uuid.uuid4().hex}",
            task_id=task_id,
            event=f"task.{status.value}",
            url=callback_url,
            payload={"type": f"task.{status.value}", "timestamp": now.isoformat(), "data": data},
            status="pending",
            attempts=0,
            created_at=now,
            next_attempt_at=now,
        )
    )

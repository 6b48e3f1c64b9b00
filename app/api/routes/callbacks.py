"""A task's webhook deliveries: the attempt log and redelivery."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import PrincipalDep, SessionDep, TaskId
from app.schemas.callbacks import CallbackEvent, CallbackList, DeliveryAttempt
from app.services import tasks as task_service
from app.services import webhooks

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


@router.get(
    "/{task_id}/callbacks",
    response_model=CallbackList,
    summary="Callback deliveries",
    description="Every webhook event of the task with every attempt: time, status code, latency, error, response.",
)
async def list_callbacks(task_id: TaskId, session: SessionDep, principal: PrincipalDep) -> CallbackList:
    """The task's events and attempts."""
    await task_service.get_task(session=session, task_id=task_id, owner=principal.scope)
    items = [
        CallbackEvent(
            id=event.id,
            event=event.event,
            url=event.url,
            status=event.status,
            created_at=event.created_at,
            next_attempt_at=event.next_attempt_at if event.status == "pending" else None,
            delivered_at=event.delivered_at,
            attempts=[
                DeliveryAttempt(
                    attempt=a.attempt,
                    at=a.at,
                    status_code=a.status_code,
                    latency_ms=a.latency_ms,
                    error=a.error,
                    response_excerpt=a.response_excerpt,
                )
                for a in attempts
            ],
        )
        for event, attempts in await webhooks.events_of(session=session, task_id=task_id)
    ]
    return CallbackList(items=items)


@router.post(
    "/{task_id}/callbacks/redeliver",
    response_model=CallbackList,
    status_code=202,
    summary="Redeliver callbacks",
    description="Queue the task's delivered and failed events for delivery again, with the same webhook-id "
    "(pending events keep their retry schedule).",
)
async def redeliver_callbacks(task_id: TaskId, session: SessionDep, principal: PrincipalDep) -> CallbackList:
    """Send the task's events again."""
    await task_service.get_task(session=session, task_id=task_id, owner=principal.scope)
    await webhooks.redeliver(session=session, task_id=task_id)
    return await list_callbacks(task_id, session, principal)

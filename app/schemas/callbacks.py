"""Webhook deliveries of a task."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DeliveryAttempt(BaseModel):
    """One POST to the callback URL."""

    attempt: int = Field(description="1 for the first try.", examples=[1])
    at: datetime
    status_code: int | None = Field(description="HTTP status, or null when no answer came.", examples=[200])
    latency_ms: float = Field(description="Time to the answer or the error.", examples=[42.0])
    error: str | None = Field(description="Connection error, timeout or refused URL.")
    response_excerpt: str | None = Field(description="The first 500 characters of the answer.")


class CallbackEvent(BaseModel):
    """A webhook event (same `webhook-id` on every attempt) and its attempts."""

    id: str = Field(description="The webhook-id header.", examples=["msg_0f1c2a9e3d7b4a539a510b7f3f6f2c11"])
    event: str = Field(description="task.completed, task.failed or task.cancelled.", examples=["task.completed"])
    url: str
    status: str = Field(description="pending, delivered or failed (gave up).", examples=["delivered"])
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When the next attempt is due; null once delivered or failed.")
    delivered_at: datetime | None
    attempts: list[DeliveryAttempt]


class CallbackList(BaseModel):
    """A task's webhook events."""

    items: list[CallbackEvent]

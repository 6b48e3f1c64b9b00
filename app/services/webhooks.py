"""Delivering outbox events: Standard Webhooks signatures, retries with backoff, every attempt recorded.

Receivers verify a delivery with `verify_webhook(body, headers, secret)` (or the `standardwebhooks` package itself):

    from app.services.webhooks import verify_webhook
    event = verify_webhook(request_body_bytes, dict(request_headers), "whsec_...")  # raises if forged or stale
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app import logs
from app.db.models import WEBHOOK_ATTEMPTS, WEBHOOK_OUTBOX, Task, WebhookAttempt, WebhookEvent
from app.db.retry import retry_transient
from app.db.types import utcnow
from app.errors import AppError, URLNotAllowed
from app.services.outbound import pin, resolve_checked
from app.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["Outcome", "WebhookDispatcher", "WebhookVerificationError", "verify_webhook"]

EXCERPT_CHARS = 500
NO_SECRET = "NoSigningSecret"  # noqa: S105 (an error name, not a password)
CLAIM_SECONDS = 120.0
"""A claimed event is hidden from other dispatchers this long (longer than any attempt's timeout)."""


def verify_webhook(body: bytes | str, headers: dict[str, str], secret: str) -> Any:
    """Check webhook-id/-timestamp/-signature against `secret`; returns the parsed event, raises if invalid."""
    return Webhook(secret).verify(body, headers)


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced."""

    status_code: int | None
    latency_ms: float
    error: str | None
    excerpt: str | None
    retry_after: float | None

    @property
    def delivered(self) -> bool:
        """2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Timeouts, connection errors, 429 and 5xx are worth another try; other answers are final."""
        if self.status_code is None:
            return self.error is not None and not self.error.startswith(("URLNotAllowed", NO_SECRET))
        return self.status_code == 429 or self.status_code >= 500


@retry_transient
async def task_secrets(*, session: AsyncSession, task_ids: set[str]) -> dict[str, str]:
    """Per-task signing secrets of the given tasks (those that have one)."""
    if not task_ids:
        return {}
    rows = await session.execute(
        select(Task.id, Task.callback_secret).where(Task.id.in_(task_ids), Task.callback_secret.is_not(None))
    )
    secrets = {task_id: secret for task_id, secret in rows if secret}
    await session.commit()
    return secrets


@retry_transient
async def claim_due(*, session: AsyncSession, limit: int = 20) -> list[WebhookEvent]:
    """Take due pending events (hidden from other dispatchers for CLAIM_SECONDS)."""
    now = utcnow()
    async with session.begin():
        rows = list(
            await session.scalars(
                select(WebhookEvent)
                .where(WebhookEvent.status == "pending", WebhookEvent.next_attempt_at <= now)
                .order_by(WebhookEvent.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if rows:
            await session.execute(
                update(WEBHOOK_OUTBOX)
                .where(WEBHOOK_OUTBOX.c.id.in_([r.id for r in rows]))
                .values(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
            )
    return rows


async def send(event: WebhookEvent, *, secret: str, allowlist: Sequence[str], timeout: float) -> Outcome:
    """POST the signed event to its URL, connecting to the address that was checked, never following redirects."""
    body = json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False)
    now = utcnow()
    headers = {
        "content-type": "application/json",
        "user-agent": "whisper-service-webhooks/1",
        "webhook-id": event.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(event.id, now, body),
    }
    started = time.perf_counter()
    try:
        addresses = await resolve_checked(event.url, allowlist=allowlist)
        target = pin(event.url, addresses[0])
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            response = await client.post(
                target.url, content=body.encode(), headers=headers | target.headers, extensions=target.extensions
            )
    except AppError as exc:
        return Outcome(None, _ms(started), f"{exc.type_name}: {exc.detail}", None, None)
    except httpx.HTTPError as exc:
        return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}", None, None)
    return Outcome(response.status_code, _ms(started), None, response.text[:EXCERPT_CHARS], _retry_after(response))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


@retry_transient
async def record(*, session: AsyncSession, event: WebhookEvent, outcome: Outcome, schedule: Sequence[float]) -> None:
    """Log the attempt and decide: delivered, retry later (backoff with jitter, Retry-After honoured), or failed."""
    now = utcnow()
    attempt = event.attempts + 1
    values: dict[str, Any] = {"attempts": attempt}
    if outcome.delivered:
        values |= {"status": "delivered", "delivered_at": now}
    elif outcome.retryable and attempt <= len(schedule):
        delay = schedule[attempt - 1] * random.uniform(0.8, 1.2)
        delay = max(delay, outcome.retry_after or 0.0)
        values |= {"next_attempt_at": now + timedelta(seconds=delay)}
    else:
        values |= {"status": "failed"}
    async with session.begin():
        await session.execute(
            insert(WEBHOOK_ATTEMPTS).values(
                event_id=event.id,
                attempt=attempt,
                at=now,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                error=outcome.error,
                response_excerpt=outcome.excerpt,
            )
        )
        await session.execute(update(WEBHOOK_OUTBOX).where(WEBHOOK_OUTBOX.c.id == event.id).values(**values))


async def events_of(*, session: AsyncSession, task_id: str) -> list[tuple[WebhookEvent, list[WebhookAttempt]]]:
    """A task's webhook events with their attempts, oldest first."""
    events = list(
        await session.scalars(
            select(WebhookEvent).where(WebhookEvent.task_id == task_id).order_by(WebhookEvent.created_at)
        )
    )
    attempts = list(
        await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.event_id.in_([e.id for e in events]))
            .order_by(WebhookAttempt.attempt)
        )
    )
    return [(e, [a for a in attempts if a.event_id == e.id]) for e in events]


async def redeliver(*, session: AsyncSession, task_id: str) -> int:
    """Send every event of the task again (same webhook-id, so receivers can deduplicate); commits."""
    result = await session.execute(
        update(WEBHOOK_OUTBOX)
        .where(WEBHOOK_OUTBOX.c.task_id == task_id)
        .values(status="pending", next_attempt_at=utcnow())
    )
    await session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def check_callback_url(url: str | None, *, secret_configured: bool) -> None:
    """Refuse a callback_url the server could not sign for."""
    if url and not secret_configured:
        raise URLNotAllowed(
            "callback_url needs a callback_secret or WHISPER_WEBHOOK_SECRET on the server (callbacks are always "
            "signed).",
            field="callback_url",
        )


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep up to `seconds`, waking early when `stop` is set (plain sleeps: a cancellation is never swallowed)."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110 (see the docstring)
        await asyncio.sleep(min(0.1, seconds))


class WebhookDispatcher:
    """Delivers due events until stopped; several may run (API nodes, workers): claims keep them apart."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession], settings: Settings, poll_seconds: float = 1.0):
        self.sessions = sessions
        self.settings = settings
        self.secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        self.poll_seconds = poll_seconds

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set."""
        while not stop.is_set():
            try:
                sent = await self.dispatch_once()
            except Exception:
                log.exception("webhook dispatch failed; retrying")
                sent = 0
            if not sent:
                await _sleep_unless(stop, self.poll_seconds)

    async def dispatch_once(self) -> int:
        """Send every due event once; returns how many."""
        async with self.sessions() as session:
            due = await claim_due(session=session)
            secrets = await task_secrets(session=session, task_ids={event.task_id for event in due})
        await asyncio.gather(*(self._deliver(event, secrets.get(event.task_id) or self.secret) for event in due))
        return len(due)

    async def _deliver(self, event: WebhookEvent, secret: str | None) -> None:
        logs.task_id.set(event.task_id)  # each delivery runs in its own asyncio task (gather)
        if secret is None:  # the server's secret was removed after the task was created
            outcome = Outcome(None, 0.0, f"{NO_SECRET}: no per-task secret and no WHISPER_WEBHOOK_SECRET", None, None)
        else:
            settings = self.settings
            outcome = await send(
                event, secret=secret, allowlist=settings.allowed_hosts, timeout=settings.webhook_timeout_seconds
            )
        log.info("webhook %s for task %s: %s", event.id, event.task_id, outcome.status_code or outcome.error)
        async with self.sessions() as session:
            await record(session=session, event=event, outcome=outcome, schedule=self.settings.webhook_retry_schedule)

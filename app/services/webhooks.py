"""Delivering outbox events: Standard Webhooks signatures, retries with backoff, every attempt recorded.

Receivers verify a delivery with `verify_webhook(body, headers, secret)` (or the `standardwebhooks` package itself):

    from app.services.webhooks import verify_webhook
    event = verify_webhook(request_body_bytes, dict(request_headers), "whsec_...")  # raises if forged or stale
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app import logs
from app.db.models import WEBHOOK_ATTEMPTS, WEBHOOK_OUTBOX, Task, WebhookAttempt, WebhookEvent
from app.db.retry import retry_transient
from app.db.types import utcnow
from app.errors import URLNotAllowed
from app.services import cluster_settings
from app.services.webhook_delivery import Failure, Outcome, send
from app.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["Failure", "Outcome", "WebhookDispatcher", "WebhookVerificationError", "verify_webhook"]

CLAIM_MARGIN_SECONDS = 60.0
"""A claim outlives the delivery deadline by this much (time to record the attempt), so while one dispatcher may
still be sending an event, no other can claim it."""
DELIVERIES_AT_ONCE = 16
"""Deliveries one dispatcher runs concurrently: a slow receiver holds one slot, not the queue."""


def verify_webhook(body: bytes | str, headers: dict[str, str], secret: str) -> Any:
    """Check webhook-id/-timestamp/-signature against `secret`; returns the parsed event, raises if invalid."""
    return Webhook(secret).verify(body, headers)


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
async def claim_due(*, session: AsyncSession, limit: int, claim_seconds: float) -> list[WebhookEvent]:
    """Take due pending events, hidden from other dispatchers for `claim_seconds`."""
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
                .values(next_attempt_at=now + timedelta(seconds=claim_seconds))
            )
    return rows


@retry_transient
async def record(
    *, session: AsyncSession, event: WebhookEvent, outcome: Outcome, schedule: Sequence[float]
) -> str | None:
    """Log the attempt and decide: delivered, retry later (backoff with jitter, Retry-After honoured), or failed.

    Returns the event's status after it, or None when the event is gone (its task was deleted during the attempt).
    """
    now = utcnow()
    attempt = event.attempts + 1
    values: dict[str, Any] = {"attempts": attempt, "status": "pending"}
    if outcome.delivered:
        values |= {"status": "delivered", "delivered_at": now}
    elif outcome.retryable and attempt <= len(schedule):
        delay = schedule[attempt - 1] * random.uniform(0.8, 1.2)
        delay = max(delay, outcome.retry_after or 0.0)  # at most MAX_RETRY_AFTER_SECONDS (see webhook_delivery)
        values |= {"next_attempt_at": now + timedelta(seconds=delay)}
    else:
        values |= {"status": "failed"}
    async with session.begin():
        # The event row first: updating it locks it, so a task deleted meanwhile shows up here as no row, instead
        # of as a foreign-key error on the attempt.
        changed = await session.execute(update(WEBHOOK_OUTBOX).where(WEBHOOK_OUTBOX.c.id == event.id).values(**values))
        if not changed.rowcount:  # type: ignore[attr-defined]
            return None
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
    return str(values["status"])


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


async def last_attempts(*, session: AsyncSession, task_ids: list[str]) -> dict[str, WebhookAttempt]:
    """The latest delivery attempt of each of these tasks' webhook events (for tasks that had one)."""
    if not task_ids:
        return {}
    rows = await session.execute(
        select(WebhookEvent.task_id, WebhookAttempt)
        .join(WebhookAttempt, WebhookAttempt.event_id == WebhookEvent.id)
        .where(WebhookEvent.task_id.in_(task_ids))
        .order_by(WebhookAttempt.at, WebhookAttempt.id)
    )
    return {task_id: attempt for task_id, attempt in rows}  # later rows win: the newest attempt


async def redeliver(*, session: AsyncSession, task_id: str) -> int:
    """Send the task's finished events again (same webhook-id, so receivers can deduplicate); commits.

    Pending events keep their schedule: one of them may be on its way right now, and must not be sent twice at once.
    """
    result = await session.execute(
        update(WEBHOOK_OUTBOX)
        .where(WEBHOOK_OUTBOX.c.task_id == task_id, WEBHOOK_OUTBOX.c.status != "pending")
        .values(status="pending", next_attempt_at=utcnow())
    )
    await session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def check_callback_url(url: str | None) -> None:
    """Refuse a callback_url with credentials, which would not be sent. (Any other is signed: with the task's
    secret, WHISPER_WEBHOOK_SECRET or the cluster's generated secret.)"""
    if url and ("@" in urlsplit(url).netloc):
        raise URLNotAllowed(
            "callback_url must not hold credentials (user:password@): they are not sent. Authenticate callbacks by "
            "their signature, or put a token in the URL's path.",
            field="callback_url",
        )


class WebhookDispatcher:
    """Delivers due events until stopped; several may run (API nodes, workers): claims keep them apart."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        poll_seconds: float = 1.0,
        concurrency: int = DELIVERIES_AT_ONCE,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        self.deadline = settings.webhook_timeout_seconds
        self._running: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; then wait for deliveries under way, which end within their deadline."""
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                free = self.concurrency - len(self._running)
                started = await self._start_due(free) if free > 0 else 0
                if started and started == free:
                    continue  # more may be due
                # Wake for the next poll, a finished delivery (a free slot) or the stop.
                await asyncio.wait(
                    [*self._running, stopping], timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                )
        except asyncio.CancelledError:
            for delivery in self._running:  # cut short: their claims run out and the events are sent again
                delivery.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            raise
        finally:
            stopping.cancel()
        if self._running:
            await asyncio.wait(self._running)

    async def dispatch_once(self) -> int:
        """Send the due events once (up to `concurrency` of them, concurrently) and wait for them; returns how many."""
        started = await self._start_due(self.concurrency)
        if self._running:
            await asyncio.wait(self._running)
        return started

    async def _start_due(self, limit: int) -> int:
        """Claim up to `limit` due events and start delivering each in its own task; returns how many."""
        try:
            async with self.sessions() as session:
                due = await claim_due(session=session, limit=limit, claim_seconds=self.deadline + CLAIM_MARGIN_SECONDS)
                secrets = await task_secrets(session=session, task_ids={event.task_id for event in due})
                if self.secret is None and any(event.task_id not in secrets for event in due):
                    # No WHISPER_WEBHOOK_SECRET: the cluster's own, the same on every node (made on first use).
                    self.secret = await cluster_settings.webhook_secret(session=session)
        except Exception:
            log.exception("claiming webhook events failed; retrying")
            return 0
        for event in due:
            secret = secrets.get(event.task_id) or self.secret
            assert secret is not None
            delivery = asyncio.create_task(self._deliver(event, secret))
            self._running.add(delivery)
            delivery.add_done_callback(self._running.discard)
        return len(due)

    async def _deliver(self, event: WebhookEvent, secret: str) -> None:
        """One attempt, recorded; never raises (an unexpected error leaves the event to be retried after its claim)."""
        logs.task_id.set(event.task_id)  # each delivery runs in its own asyncio task
        try:
            outcome = await send(event, secret=secret, allowlist=self.settings.allowed_hosts, deadline=self.deadline)
            async with self.sessions() as session:
                status = await record(
                    session=session, event=event, outcome=outcome, schedule=self.settings.webhook_retry_schedule
                )
        except Exception:
            log.exception("webhook %s for task %s: delivery failed; retrying after its claim", event.id, event.task_id)
            return
        what = outcome.error or outcome.status_code
        if status is None:
            log.info("webhook %s: task %s was deleted during the attempt (%s); dropped", event.id, event.task_id, what)
        elif status == "failed":
            log.warning("webhook %s for task %s failed for good: %s", event.id, event.task_id, what)
        else:
            log.info("webhook %s for task %s: %s (%s)", event.id, event.task_id, what, status)

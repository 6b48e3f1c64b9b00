"""One webhook delivery attempt over HTTP: a total deadline, a capped read of the reply, and a typed outcome."""

from __future__ import annotations

import asyncio
import enum
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from app.db.models import WebhookEvent
from app.db.types import utcnow
from app.errors import AppError
from app.services.outbound import pin, resolve_checked

EXCERPT_CHARS = 500
REPLY_BYTES = 4096
"""The most of a receiver's reply that is read; the rest is never downloaded (a receiver only needs to say 2xx)."""
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
"""A receiver asking to wait longer than this gets no more attempts (a day-old task event is of little use)."""


class Failure(enum.Enum):
    """Why an attempt got no usable answer; its value is the error name stored with the attempt."""

    TIMEOUT = "Timeout"
    CONNECTION = "ConnectionError"
    URL_NOT_ALLOWED = "URLNotAllowed"
    INVALID_URL = "InvalidURL"
    RETRY_AFTER_TOO_LONG = "RetryAfterTooLong"

    @property
    def retryable(self) -> bool:
        """Passing trouble is worth another try; a refused URL or an absurd answer is not."""
        return self in (Failure.TIMEOUT, Failure.CONNECTION)


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: a status code, a failure, or both (an answer that cannot be honoured)."""

    status_code: int | None
    latency_ms: float
    failure: Failure | None = None
    detail: str | None = None
    excerpt: str | None = None
    retry_after: float | None = None

    @classmethod
    def failed(
        cls, failure: Failure, detail: str, *, latency_ms: float = 0.0, status_code: int | None = None
    ) -> Outcome:
        """An attempt that ended in `failure`."""
        return cls(status_code, latency_ms, failure, detail)

    @property
    def error(self) -> str | None:
        """The stored error text: the failure's name, then what happened."""
        return f"{self.failure.value}: {self.detail}" if self.failure else None

    @property
    def delivered(self) -> bool:
        """The receiver answered 2xx."""
        return self.failure is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Timeouts, connection errors, 429 and 5xx are worth another try; other answers are final."""
        if self.failure is not None:
            return self.failure.retryable
        return self.status_code is not None and (self.status_code == 429 or self.status_code >= 500)


async def send(event: WebhookEvent, *, secret: str, allowlist: Sequence[str], deadline: float) -> Outcome:
    """POST the signed event to its URL and read at most REPLY_BYTES of the reply, all within `deadline` seconds;
    connect to the address that was checked, never follow redirects."""
    started = time.perf_counter()
    try:
        urlsplit(event.url).port  # noqa: B018 (raises on a port out of range)
    except ValueError as exc:
        return Outcome.failed(Failure.INVALID_URL, f"The callback URL cannot be used: {exc}.")
    body = json.dumps(event.payload, separators=(",", ":"), ensure_ascii=False)
    now = utcnow()
    headers = {
        "content-type": "application/json",
        "user-agent": "whisper-service-webhooks/1",
        "accept-encoding": "identity",  # the reply is read raw and capped: no decompression bombs
        "webhook-id": event.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(event.id, now, body),
    }
    try:
        async with asyncio.timeout(deadline):
            addresses = await resolve_checked(event.url, allowlist=allowlist)
            target = pin(event.url, addresses[0])
            async with (
                httpx.AsyncClient(timeout=deadline, follow_redirects=False, trust_env=False) as client,
                client.stream(
                    "POST",
                    target.url,
                    content=body.encode(),
                    headers=headers | target.headers,
                    extensions=target.extensions,
                ) as response,
            ):
                reply = await _read_at_most(response, REPLY_BYTES)
    except (TimeoutError, httpx.TimeoutException):
        return Outcome.failed(Failure.TIMEOUT, f"no complete answer within {deadline:g} s", latency_ms=_ms(started))
    except AppError as exc:
        return Outcome.failed(Failure.URL_NOT_ALLOWED, exc.detail, latency_ms=_ms(started))
    except httpx.InvalidURL as exc:
        return Outcome.failed(Failure.INVALID_URL, f"The callback URL cannot be used: {exc}.")
    except httpx.HTTPError as exc:
        return Outcome.failed(Failure.CONNECTION, f"{type(exc).__name__}: {exc}", latency_ms=_ms(started))
    return _answered(response, reply, _ms(started))


async def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The first `limit` bytes of the body as sent; leaving the stream unread closes the connection."""
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


def _answered(response: httpx.Response, reply: bytes, latency_ms: float) -> Outcome:
    excerpt = reply.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
    code = response.status_code
    retry_after = _retry_after(response.headers.get("retry-after"))
    if (code == 429 or code >= 500) and retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS:
        detail = (
            f"the receiver asked to wait {response.headers['retry-after'][:40]!r} (Retry-After), more than "
            f"{MAX_RETRY_AFTER_SECONDS / 3600:g} h; not retried"
        )
        return Outcome(code, latency_ms, Failure.RETRY_AFTER_TOO_LONG, detail, excerpt)
    return Outcome(code, latency_ms, excerpt=excerpt, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delay in seconds or an HTTP date); None if absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(min(int(value), 10**12))  # any larger number is just as much too long
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000

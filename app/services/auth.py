"""API keys: who is calling, what they may see, and how often they may call."""

from __future__ import annotations

import hmac
import math
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Task
from app.errors import AppError
from app.schemas.tasks import TaskStatus
from app.settings import Settings


class Unauthorized(AppError):
    """A valid API key is required: send `Authorization: Bearer <key>`."""

    status_code = 401
    title = "Unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        """Tell the client which scheme to use."""
        return {"WWW-Authenticate": "Bearer"}


class RateLimited(AppError):
    """Too many requests for this API key."""

    status_code = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """When to try again."""
        return {"Retry-After": str(self.retry_after)}


@dataclass(frozen=True)
class Principal:
    """The caller: the key's name, and whether it sees every task."""

    name: str
    admin: bool

    @property
    def scope(self) -> str | None:
        """The owner whose tasks this caller sees; None for all."""
        return None if self.admin else self.name


ANONYMOUS = Principal(name="", admin=True)
"""Without configured keys, every caller is this one (and the server listens on loopback only)."""


@dataclass(frozen=True)
class KeyRing:
    """The configured keys, by secret."""

    keys: tuple[tuple[str, bytes], ...]  # (name, secret)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """Parse `name:key` / `key` items; the seed's ACCESS_TOKEN is the key named `default`."""
        keys = []
        for i, item in enumerate(settings.api_keys):
            name, _, secret = item.rpartition(":")
            keys.append((name or f"key{i + 1}", secret.encode()))
        if settings.access_token is not None:
            keys.append(("default", settings.access_token.get_secret_value().encode()))
        return cls(tuple(keys))

    @property
    def enabled(self) -> bool:
        """Whether any key is configured."""
        return bool(self.keys)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an `Authorization` header; compares against every key in constant time."""
        if not self.enabled:
            return ANONYMOUS
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Missing API key: send `Authorization: Bearer <key>`.")
        given = token.strip().encode()
        found: str | None = None
        for name, secret in self.keys:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(given, secret):
                found = name
        if found is None:
            raise Unauthorized("Invalid API key.")
        return Principal(name=found, admin=found.startswith("admin"))


class RateLimiter:
    """Sliding one-minute window of request times per key, in this process."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = defaultdict(deque)

    def check(self, key: str) -> None:
        """Count a request, or raise RateLimited with the seconds until one is allowed."""
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        hits = self._hits[key]
        while hits and hits[0] <= now - 60:
            hits.popleft()
        if len(hits) >= self.per_minute:
            wait = math.ceil(60 - (now - hits[0]))
            raise RateLimited(f"More than {self.per_minute} requests per minute for this key.", retry_after=wait)
        hits.append(now)


async def check_concurrency(*, session: AsyncSession, owner: str, limit: int) -> None:
    """Refuse a new task when the owner already has `limit` queued or running."""
    if limit <= 0:
        return
    active = await session.scalar(
        select(func.count())
        .select_from(Task)
        .where(Task.owner == owner, Task.status.in_([TaskStatus.queued.value, TaskStatus.running.value]))
    )
    if (active or 0) >= limit:
        raise RateLimited(f"This key already has {active} unfinished tasks (limit {limit}).", retry_after=5)

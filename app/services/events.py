"""What changed in a key's tasks since the last look: the polling behind the server-sent event streams.

Each poll costs the same however long a stream has been open: it reads the unfinished tasks, the tasks that finished
within a short look-back window (an index on finished_at), and by id the few it was following that left both sets.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Task, TaskDeletion
from app.db.types import utcnow
from app.errors import RateLimited
from app.schemas.tasks import FINISHED, TaskStatus

LOOKBACK = timedelta(seconds=5)
"""How far before the previous poll a finish is looked for: covers commits that land after their finished_at and
clock differences between nodes."""

State = tuple[str, int, int, str | None]


@dataclass
class Changes:
    """One poll's outcome: tasks whose state changed, ids that were deleted, and rows read."""

    tasks: list[Task]
    deleted: list[str]
    rows_read: int
    finished: bool = False
    """A single-task watch whose task has ended (or is gone)."""


@dataclass
class TaskWatch:
    """What one stream has already sent, for one task or all of an owner's tasks."""

    owner: str | None
    task_id: str | None = None
    sent: dict[str, tuple[State, datetime | None]] = field(default_factory=dict)
    announced: dict[str, datetime] = field(default_factory=dict)
    """Deleted ids already sent, with when, so the overlapping look-back does not send them twice."""
    last_poll: datetime = field(default_factory=utcnow)

    async def poll(self, session: AsyncSession, *, now: datetime | None = None) -> Changes:
        """Read what changed since the previous poll (the first poll also covers the 5 s before the watch began)."""
        now = now or utcnow()
        since, self.last_poll = self.last_poll - LOOKBACK, now
        rows = await self._read(session, since)
        seen = {task.id for task in rows}
        missing = [known for known in self.sent if known not in seen and self._following(known, since)]
        if missing:  # left both sets since the last poll: finished long ago (late commit) or deleted
            rows += await self._by_ids(session, missing)
        found = {task.id for task in rows}
        changed = []
        for task in rows:
            state: State = (task.status, task.progress, task.attempts, task.error_type)
            if self.sent.get(task.id, (None, None))[0] != state:
                changed.append(task)
            self.sent[task.id] = (state, task.finished_at)
        deleted = [gone for gone in missing if gone not in found]
        for gone in deleted:
            del self.sent[gone]
        if self.task_id is None:  # deletions of tasks this watch was not following (finished long ago)
            for gone, at in await self._deletions(session, since):
                if gone not in found and gone not in deleted and gone not in self.announced:
                    deleted.append(gone)
                self.announced[gone] = at
        for gone in deleted:
            self.announced.setdefault(gone, now)
        self._forget(before=since)
        ended = self.task_id is not None and (not rows or rows[0].status in FINISHED)
        return Changes(changed, deleted, len(rows), finished=ended)

    async def _read(self, session: AsyncSession, since: datetime) -> list[Task]:
        query = select(Task)
        if self.task_id is not None:
            query = query.where(Task.id == self.task_id)
            return list(await session.scalars(self._scoped(query)))
        unfinished = self._scoped(query.where(Task.status.in_([TaskStatus.queued.value, TaskStatus.running.value])))
        recent = self._scoped(query.where(Task.finished_at >= since))
        tasks = list(await session.scalars(unfinished))
        tasks += [task for task in await session.scalars(recent) if task.status in FINISHED]
        return tasks

    async def _deletions(self, session: AsyncSession, since: datetime) -> list[tuple[str, datetime]]:
        query = select(TaskDeletion.task_id, TaskDeletion.deleted_at).where(TaskDeletion.deleted_at >= since)
        if self.owner is not None:
            query = query.where(TaskDeletion.owner == self.owner)
        return [(task_id, at) for task_id, at in await session.execute(query)]

    async def _by_ids(self, session: AsyncSession, ids: list[str]) -> list[Task]:
        return list(await session.scalars(self._scoped(select(Task).where(Task.id.in_(ids)))))

    def _scoped(self, query: Select[Task]) -> Select[Task]:
        if self.owner is not None:
            query = query.where(Task.owner == self.owner)
        return query.execution_options(populate_existing=True)

    def _following(self, task_id: str, since: datetime) -> bool:
        """Whether the task is one this watch's queries should have returned (unfinished, or finished recently)."""
        finished_at = self.sent[task_id][1]
        return finished_at is None or finished_at >= since

    def _forget(self, *, before: datetime) -> None:
        """Drop tasks that finished before the window: later polls do not read them, so memory stays bounded too."""
        for task_id in [t for t, (_, done) in self.sent.items() if done is not None and done < before]:
            del self.sent[task_id]
        for task_id in [t for t, at in self.announced.items() if at < before]:
            del self.announced[task_id]


class StreamSlots:
    """Open event streams per key on this API node, capped."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self.open: dict[str, int] = defaultdict(int)

    def take(self, key: str) -> None:
        """Count a new stream, or raise RateLimited when the key already has its limit open."""
        if 0 < self.per_key <= self.open[key]:
            raise RateLimited(
                f"This key already has {self.open[key]} event streams open (limit {self.per_key}); close one.",
                retry_after=5,
            )
        self.open[key] += 1

    def give_back(self, key: str) -> None:
        """A stream ended."""
        self.open[key] -= 1
        if self.open[key] <= 0:
            del self.open[key]

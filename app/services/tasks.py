"""Task lifecycle as the API sees it: create, read, list, cancel, delete."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import MEDIA_CHUNKS, TASK_DELETIONS, TASK_NUMBERS, TASK_RESULTS, TASKS, Task, TaskResult
from app.db.retry import retry_transient
from app.db.types import utcnow
from app.errors import IdempotencyKeyReused, InvalidInput, TaskAlreadyFinished, TaskNotFinished, TaskNotFound
from app.schemas.tasks import (
    FINISHED,
    CallbackPayload,
    DecodeOptions,
    Priority,
    TaskCreate,
    TaskStatus,
    TaskType,
)
from app.schemas.transcript import Segment, Transcript
from app.services import media, outbox, queue
from app.services.admission import Admission, check_limits
from app.services.media import DecodedMedia
from app.settings import Settings


@dataclass(frozen=True)
class Creation:
    """The task a create request led to, and whether it is new or an idempotent replay."""

    task: Task
    created: bool


async def create_task(
    *,
    session: AsyncSession,
    admission: Admission,
    settings: Settings,
    audio: DecodedMedia | None = None,
    filename: str | None = None,
    idempotency_key: str | None = None,
    callback_payload: CallbackPayload | None = None,
    compat_meta: dict[str, Any] | None = None,
) -> Creation:
    """Queue an admitted task for uploaded audio or for its `file_url`; one short transaction (the per-key limit,
    the insert, the media), committed.

    With an idempotency key, a repeat of the same request (same owner, key, options and media) returns the task the
    first one created, even when both arrive at once; the same key with a different request is refused.
    A compatibility API gives the callback body its clients expect (`callback_payload`) and what its clients sent
    that the task does not hold (`compat_meta`).
    """
    task_in, owner, model, language = admission.task_in, admission.owner, admission.model, admission.language
    if (audio is None) == (task_in.file_url is None):
        raise InvalidInput("Give either an upload or file_url, not both.", field="file_url")
    platform = admission.platform
    fingerprint = _fingerprint(task_in, model=model, language=language, audio=audio, filename=filename)
    if idempotency_key and (earlier := await _by_key(session, owner, idempotency_key)):
        return _replay(earlier, fingerprint)
    await check_limits(session=session, admission=admission)
    options = task_in.decode_options()
    key = (
        content_key(audio.sha256, task_type=task_in.task_type.value, model=model, language=language, options=options)
        if audio
        else None
    )
    reusable = await find_reusable(session=session, owner=owner or "", key=key) if key and task_in.dedupe else None
    now = utcnow()
    task = Task(
        id=str(uuid.uuid4()),
        owner=owner or "",
        task_type=task_in.task_type.value,
        status=TaskStatus.queued.value,
        priority=task_in.priority.rank,
        model=model,
        language=language,
        options=options,
        source="upload" if audio else ("platform" if platform else "url"),
        source_url=task_in.file_url,
        source_meta={"platform": platform} if platform else None,
        filename=_clean_filename(filename),
        media_duration=audio.duration if audio else None,
        media_bytes=audio.size if audio else None,
        progress=0,
        attempts=0,
        max_attempts=settings.max_attempts,
        run_at=now,
        cancel_requested=False,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        callback_url=task_in.callback_url,
        callback_secret=task_in.callback_secret.get_secret_value() if task_in.callback_secret else None,
        callback_payload=(callback_payload or CallbackPayload(task_in.callback_payload)).value,
        compat_meta=compat_meta,
        content_hash=key,
        created_at=now,
        delete_after_seconds=admission.delete_after_seconds,
    )
    try:
        session.add(task)
        await session.flush()
        if reusable:
            await _complete_from(session, task, *reusable)
        elif audio:
            await media.store_media(session=session, task_id=task.id, path=audio.path)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        if idempotency_key and (earlier := await _by_key(session, owner, idempotency_key)):
            return _replay(earlier, fingerprint)  # a concurrent request with the same key won
        raise
    return Creation(task, created=True)


def content_key(media_sha256: str, *, task_type: str, model: str, language: str | None, options: dict[str, Any]) -> str:
    """SHA-256 of what makes two transcriptions the same: the decoded sound and every option that shapes the result
    (defaults filled in, so leaving an option out and giving its default value match)."""
    shaping = DecodeOptions.model_validate(options).model_dump(mode="json", exclude={"dedupe"})
    described = {
        "media": media_sha256,
        "task_type": task_type,
        "model": model,
        "language": language,
        "options": shaping,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


async def find_reusable(*, session: AsyncSession, owner: str, key: str) -> tuple[str, Transcript] | None:
    """The newest completed task of `owner` with this content key, and its transcript."""
    row = await session.scalar(
        select(TaskResult)
        .join(Task, Task.id == TaskResult.task_id)
        .where(Task.owner == owner, Task.content_hash == key, Task.status == TaskStatus.completed.value)
        .order_by(Task.finished_at.desc())
        .limit(1)
    )
    return (row.task_id, transcript_of(row)) if row else None


@retry_transient
async def reusable_for(*, session: AsyncSession, owner: str, key: str) -> tuple[str, Transcript] | None:
    """`find_reusable` in a transaction of its own, retried on transient errors (for workers)."""
    found = await find_reusable(session=session, owner=owner, key=key)
    await session.commit()
    return found


async def _complete_from(session: AsyncSession, task: Task, twin_id: str, transcript: Transcript) -> None:
    """Finish a new task at once with the result of `twin_id` (part of the caller's transaction)."""
    now = utcnow()
    task.status = TaskStatus.completed.value
    task.progress = 100
    task.language = transcript.language
    task.started_at = task.finished_at = now
    task.delete_at = queue.deletion_time(now, task.delete_after_seconds)
    task.processing_seconds = 0.0
    task.reused_from = twin_id
    session.add(TaskResult(task_id=task.id, **queue.result_columns(transcript)))
    await outbox.record_event(
        session=session,
        task_id=task.id,
        status=TaskStatus.completed,
        callback_url=task.callback_url,
        transcript=transcript,
    )


def _fingerprint(
    task_in: TaskCreate, *, model: str, language: str | None, audio: DecodedMedia | None, filename: str | None
) -> str:
    """SHA-256 over everything that defines the request: options, model, language, media or URL."""
    described = task_in.model_dump(mode="json", exclude={"model", "language", "callback_secret"}, exclude_none=True)
    if task_in.callback_secret is not None:
        described["callback_secret"] = hashlib.sha256(task_in.callback_secret.get_secret_value().encode()).hexdigest()
    described |= {"model": model, "language": language, "media": audio.sha256 if audio else None, "name": filename}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


async def _by_key(session: AsyncSession, owner: str | None, key: str) -> Task | None:
    query = select(Task).where(Task.owner == (owner or ""), Task.idempotency_key == key)
    return (await session.scalars(query.execution_options(populate_existing=True))).one_or_none()


def _replay(earlier: Task, fingerprint: str) -> Creation:
    if earlier.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key was already used for a different request (task {earlier.id}); use a new key."
        )
    return Creation(earlier, created=False)


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    # A client's own file name is kept, not refused: path and control characters dropped, cut to the column's size
    # keeping the extension.
    name = "".join(c for c in name.replace("\\", "/").rsplit("/", 1)[-1] if unicodedata.category(c) != "Cc")
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = stem[: 255 - len(ext) - 1] + dot + ext if dot and len(ext) <= 16 else name[:255]
    return name or None


async def get_task(*, session: AsyncSession, task_id: str, owner: str | None, lock: bool = False) -> Task:
    """The task, if it exists and `owner` may see it (None sees all); `lock`: its row locked until the transaction
    ends (SELECT ... FOR UPDATE)."""
    task = await session.get(Task, task_id, populate_existing=True, with_for_update=lock)
    if task is None or (owner is not None and task.owner != owner):
        raise TaskNotFound(f"No task with id {task_id!r}.")
    return task


async def get_task_by_number(*, session: AsyncSession, number: int, owner: str | None) -> Task:
    """The task with this number, if it exists and `owner` may see it (None sees all)."""
    query = select(Task).where(Task.number == number).execution_options(populate_existing=True)
    task = await session.scalar(query)
    if task is None or (owner is not None and task.owner != owner):
        raise TaskNotFound(f"No task with number {number}.")
    return task


async def results_of(*, session: AsyncSession, tasks: list[Task]) -> dict[str, Transcript]:
    """The transcripts of those of `tasks` that are completed, by task id."""
    ids = [task.id for task in tasks if task.status == TaskStatus.completed]
    if not ids:
        return {}
    rows = await session.scalars(select(TaskResult).where(TaskResult.task_id.in_(ids)))
    return {row.task_id: transcript_of(row) for row in rows}


async def get_result(*, session: AsyncSession, task: Task) -> Transcript:
    """The transcript of a completed task."""
    if task.status != TaskStatus.completed:
        raise TaskNotFinished(f"Task {task.id} is {task.status}; a result exists once it is completed.")
    row = await session.get(TaskResult, task.id)
    if row is None:  # deleted between the two reads
        raise TaskNotFound(f"No task with id {task.id!r}.")
    return transcript_of(row)


def transcript_of(row: TaskResult) -> Transcript:
    """The API model of a stored result."""
    return Transcript(
        text=row.text,
        language=row.language,
        language_probability=row.language_probability,
        duration=row.duration,
        segments=[Segment.model_validate(segment) for segment in row.segments],
    )


@dataclass(frozen=True)
class TaskFilters:
    """Filters for listing tasks."""

    status: TaskStatus | None = None
    statuses: tuple[TaskStatus, ...] | None = None  # any of these
    priority: Priority | None = None
    task_type: TaskType | None = None
    language: str | None = None
    model: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    has_error: bool | None = None
    has_result: bool | None = None

    def apply(self, query: Select[Task]) -> Select[Task]:
        """Add the WHERE clauses."""
        if self.status:
            query = query.where(Task.status == self.status.value)
        if self.statuses is not None:
            query = query.where(Task.status.in_([s.value for s in self.statuses]))
        if self.priority:
            query = query.where(Task.priority == self.priority.rank)
        if self.task_type:
            query = query.where(Task.task_type == self.task_type.value)
        if self.language:
            query = query.where(Task.language == self.language)
        if self.model:
            query = query.where(Task.model == self.model)
        if self.created_after:
            query = query.where(Task.created_at >= self.created_after)
        if self.created_before:
            query = query.where(Task.created_at < self.created_before)
        if self.has_error is not None:
            query = query.where(Task.error_type.is_not(None) if self.has_error else Task.error_type.is_(None))
        if self.has_result is not None:
            completed = Task.status == TaskStatus.completed.value
            query = query.where(completed if self.has_result else ~completed)
        return query


@dataclass(frozen=True)
class TaskPageResult:
    """A page of tasks."""

    items: list[Task]
    total: int
    next_cursor: str | None


async def list_tasks(
    *, session: AsyncSession, owner: str | None, filters: TaskFilters, limit: int, cursor: str | None
) -> TaskPageResult:
    """Tasks newest first, with keyset pagination."""
    query = filters.apply(select(Task))
    if owner is not None:
        query = query.where(Task.owner == owner)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if cursor:
        created_at, task_id = _decode_cursor(cursor)
        query = query.where(or_(Task.created_at < created_at, (Task.created_at == created_at) & (Task.id < task_id)))
    rows = list(await session.scalars(query.order_by(Task.created_at.desc(), Task.id.desc()).limit(limit + 1)))
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return TaskPageResult(rows[:limit], total, next_cursor)


async def list_tasks_by_offset(
    *, session: AsyncSession, owner: str | None, filters: TaskFilters, limit: int, offset: int
) -> tuple[list[Task], int]:
    """Tasks oldest first (in order of creation), `limit` of them after skipping `offset`; and how many match."""
    query = filters.apply(select(Task))
    if owner is not None:
        query = query.where(Task.owner == owner)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = await session.scalars(query.order_by(Task.created_at, Task.number).offset(offset).limit(limit))
    return list(rows), total


def _encode_cursor(task: Task) -> str:
    raw = json.dumps([task.created_at.isoformat(), task.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor holds; anything a previous page could not have written is refused."""
    invalid = InvalidInput("The cursor is not valid; pass next_cursor from a previous page.", field="cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, task_id = json.loads(raw)
        if not isinstance(created, str) or not isinstance(task_id, str):
            raise invalid
        when = datetime.fromisoformat(created)
        if when.tzinfo is None:
            raise invalid
        return when.astimezone(UTC), task_id
    except (binascii.Error, ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise invalid from exc


async def cancel_task(*, session: AsyncSession, task_id: str, owner: str | None) -> Task:
    """Cancel a queued task at once, or ask a running one to stop (its worker checks every second); commits. The row
    is locked first: a claim committing meanwhile must not be overwritten with `cancelled`."""
    task = await get_task(session=session, task_id=task_id, owner=owner, lock=True)
    if task.status in FINISHED:
        raise TaskAlreadyFinished(f"Task {task.id} is already {task.status}.")
    if task.status == TaskStatus.queued:
        task.status = TaskStatus.cancelled.value
        task.finished_at = utcnow()
        task.delete_at = queue.deletion_time(task.finished_at, task.delete_after_seconds)
        task.lease_token = None
        await media.delete_media(session=session, task_id=task.id)
        await outbox.record_event(
            session=session, task_id=task.id, status=TaskStatus.cancelled, callback_url=task.callback_url
        )
    else:
        task.cancel_requested = True
    await session.commit()
    return task


DELETIONS_KEPT = timedelta(minutes=10)
"""How long a deletion stays visible to event streams (their polls read the last few seconds)."""


async def delete_task(*, session: AsyncSession, task_id: str, owner: str | None) -> None:
    """Remove a task with everything it owns (`remove_tasks`); a running task loses its lease and stops; commits."""
    task = await get_task(session=session, task_id=task_id, owner=owner, lock=True)
    await remove_tasks(session=session, tasks=[(task.id, task.owner)])
    await session.commit()


async def remove_tasks(*, session: AsyncSession, tasks: Sequence[tuple[str, str]]) -> None:
    """Delete tasks, given as (id, owner), with everything they own, part of the caller's transaction, which holds
    their rows locked (so each is removed, and its tombstone written, by one transaction): media, result and number
    row here; partials, summaries, webhook events and their attempts through the database's ON DELETE CASCADE. Each
    leaves a tombstone for event streams."""
    ids = [task_id for task_id, _ in tasks]
    await session.execute(delete(MEDIA_CHUNKS).where(MEDIA_CHUNKS.c.task_id.in_(ids)))
    await session.execute(delete(TASK_RESULTS).where(TASK_RESULTS.c.task_id.in_(ids)))
    # Tombstones, for event streams (which follow only unfinished and recently finished tasks); old ones go.
    now = utcnow()
    await session.execute(delete(TASK_DELETIONS).where(TASK_DELETIONS.c.deleted_at < now - DELETIONS_KEPT))
    await session.execute(
        insert(TASK_DELETIONS), [{"task_id": task_id, "owner": owner, "deleted_at": now} for task_id, owner in tasks]
    )
    await session.execute(delete(TASK_NUMBERS).where(TASK_NUMBERS.c.task_id.in_(ids)))
    await session.execute(delete(TASKS).where(TASKS.c.id.in_(ids)))

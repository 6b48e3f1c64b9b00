"""Whether a new task may exist: one step that every create route runs before a task is written."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Task
from app.errors import InvalidInput, RateLimited
from app.schemas.tasks import ChineseScript, TaskCreate, TaskStatus
from app.services.catalog import check_model, offered_models
from app.services.outbound import check_on_face
from app.services.platforms import detect_platform
from app.services.webhooks import check_callback_url
from app.settings import Settings


@dataclass(frozen=True)
class Admission:
    """A request whose model, language and URLs were checked; the per-key limit is checked where it is inserted."""

    task_in: TaskCreate
    owner: str
    model: str
    language: str | None
    platform: str | None
    max_concurrent_tasks: int
    delete_after_seconds: int | None
    """How long the task is kept once it finishes: the request's value, else the server's retention; None: until
    deleted."""


TRADITIONAL_SCRIPTS = frozenset({ChineseScript.traditional, ChineseScript.taiwan, ChineseScript.hongkong})


def chinese_script(requested: ChineseScript | None, *, default: str, traditional: bool = False) -> ChineseScript | None:
    """The script a task's Chinese text is given in: the request's, else the server's default
    (WHISPER_DEFAULT_CHINESE_SCRIPT); on a route that promises Traditional output (`traditional`), a default that is
    not a Traditional script gives `traditional`. None: as the model writes."""
    script = requested or ChineseScript(default)
    if requested is None and traditional and script not in TRADITIONAL_SCRIPTS:
        script = ChineseScript.traditional
    return None if script is ChineseScript.none else script


def admit(
    task_in: TaskCreate, *, owner: str | None, settings: Settings, traditional_chinese: bool = False
) -> Admission:
    """Check the request without any I/O (model and language known, URLs allowed on their face); cheap enough to
    run before an upload is decoded. The task keeps the Chinese script resolved here (see `chinese_script`), so
    its result and every export follow the default in force when it was created."""
    script = chinese_script(
        task_in.chinese_script, default=settings.default_chinese_script, traditional=traditional_chinese
    )
    if script != task_in.chinese_script:
        task_in = task_in.model_copy(update={"chinese_script": script})
    model = task_in.model or settings.default_model
    language = task_in.language or settings.default_language
    check_model(model=model, task_type=task_in.task_type, language=language, extra=offered_models(settings), hub=False)
    check_callback_url(task_in.callback_url)
    for url in (task_in.file_url, task_in.callback_url):
        if url:
            check_on_face(url, allowlist=settings.allowed_hosts)
    retention = settings.retention_seconds
    if retention and task_in.delete_after_seconds and task_in.delete_after_seconds > retention:
        raise InvalidInput(
            f"delete_after_seconds may be at most {retention}: this server deletes finished tasks after {retention} s "
            "(WHISPER_RETENTION_SECONDS), and a task may be kept for less, not longer.",
            field="delete_after_seconds",
        )
    platform = task_in.platform or (detect_platform(task_in.file_url) if task_in.file_url else None)
    return Admission(
        task_in=task_in,
        owner=owner or "",
        model=model,
        language=language,
        platform=platform,
        max_concurrent_tasks=settings.max_concurrent_tasks,
        delete_after_seconds=task_in.delete_after_seconds or retention or None,
    )


async def check_limits(*, session: AsyncSession, admission: Admission) -> None:
    """Refuse a new task when the owner already has its limit of queued or running tasks.

    Runs inside the short transaction that inserts the task (never across an upload or a decode: on SQLite every
    transaction holds the write lock).
    """
    limit = admission.max_concurrent_tasks
    if limit <= 0:
        return
    active = await session.scalar(
        select(func.count())
        .select_from(Task)
        .where(Task.owner == admission.owner, Task.status.in_([TaskStatus.queued.value, TaskStatus.running.value]))
    )
    if (active or 0) >= limit:
        raise RateLimited(f"This key already has {active} unfinished tasks (limit {limit}).", retry_after=5)

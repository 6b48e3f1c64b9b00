"""Task routes: create by upload, raw body or URL; read, list, cancel, delete; result and subtitles."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from app.api.deps import PrincipalDep, SessionDep, SettingsDep
from app.api.intake import decode_upload, upload_chunks
from app.api.openapi import CREATE_TASK_OPENAPI
from app.db.models import Task
from app.errors import InvalidInput, NoMediaGiven, UnsupportedMediaType
from app.schemas.subtitles import SubtitleLayout
from app.schemas.tasks import (
    Priority,
    TaskCreate,
    TaskDetail,
    TaskError,
    TaskPage,
    TaskStatus,
    TaskSummary,
    TaskType,
)
from app.schemas.transcript import Transcript
from app.services import tasks as task_service
from app.services.auth import check_concurrency
from app.services.catalog import check_model
from app.services.media import DecodedMedia
from app.services.platforms import detect_platform, find_url
from app.services.subtitles import MEDIA_TYPES, SubtitleFormat, render
from app.settings import Settings

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
RAW_TYPES = ("audio/", "video/", "application/octet-stream")
TaskId = Annotated[
    str, PathParam(description="Task id.", examples=["6f1c2a9e-3d7b-4a53-9a51-0b7f3f6f2c11"], max_length=64)
]


def parse_task_create(data: dict[str, Any]) -> TaskCreate:
    """Validate task options; errors name the field, as FastAPI's own validation does."""
    try:
        return TaskCreate.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc


def _group(items: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Form or query pairs to a dict; a repeated key becomes a list (e.g. several temperatures)."""
    grouped: dict[str, Any] = {}
    for key, value in items:
        if key in grouped:
            previous = grouped[key]
            grouped[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            grouped[key] = value
    return grouped


def _check(task_in: TaskCreate, settings: Settings) -> None:
    check_model(
        model=task_in.model or settings.default_model,
        task_type=task_in.task_type,
        language=task_in.language or settings.default_language,
        extra=settings.extra_models,
    )


async def _read_request(request: Request, settings: Settings) -> tuple[TaskCreate, DecodedMedia | None, str | None]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in FORM_TYPES:
        form = await request.form(max_files=1, max_fields=64)
        try:
            upload = form.get("file")
            fields = _group((k, v) for k, v in form.multi_items() if k != "file")
            task_in = parse_task_create(fields)
            if isinstance(upload, UploadFile):
                if task_in.file_url:
                    raise InvalidInput("Give either a file or file_url, not both.", field="file_url")
                _check(task_in, settings)
                return task_in, await decode_upload(upload_chunks(upload), settings), upload.filename
            if upload is not None:
                raise InvalidInput("The `file` field must be a file upload, not text.", field="file")
        finally:
            await form.close()
    elif content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as exc:
            raise InvalidInput(f"The request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidInput("The JSON body must be an object with task fields.")
        task_in = parse_task_create(body)
    elif content_type.startswith(RAW_TYPES):
        query = _group(request.query_params.multi_items())
        filename = query.pop("filename", None)
        task_in = parse_task_create(query)
        if task_in.file_url:
            raise InvalidInput("A raw body upload cannot also give file_url.", field="file_url")
        _check(task_in, settings)
        return task_in, await decode_upload(request.stream(), settings), filename
    elif content_type:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not accepted: use multipart/form-data with a `file` field, "
            "a raw audio/*, video/* or application/octet-stream body, or application/json with `file_url`."
        )
    else:
        task_in = parse_task_create(dict(request.query_params))
    if task_in.file_url is None:
        raise NoMediaGiven()
    return task_in, None, None


@router.post(
    "",
    status_code=201,
    response_model=TaskDetail,
    summary="Create a task",
    description=(
        "Queue audio or video for transcription. Send the media as a multipart `file` (options as form fields), "
        "as the raw request body with an `audio/*`, `video/*` or `application/octet-stream` Content-Type "
        "(options as query parameters, plus an optional `filename`), or give `file_url` in a JSON or form body. "
        "The media is decoded and checked before the task is created: unreadable, empty, silent-only video, "
        "over-long or over-large input is refused with a problem+json error and no task."
    ),
    openapi_extra=CREATE_TASK_OPENAPI,
    responses={413: {"description": "Upload too large"}, 415: {"description": "Unsupported media"}},
)
async def create_task(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Repeating a request with the same key returns the first one's task (200) instead of "
            "creating another; the same key with a different request is refused (422).",
            examples=["upload-2026-11-22-0001"],
        ),
    ] = None,
) -> TaskDetail:
    """Create a task from the request body."""
    await check_concurrency(session=session, owner=principal.name, limit=settings.max_concurrent_tasks)
    task_in, audio, filename = await _read_request(request, settings)
    try:
        creation = await task_service.create_task(
            session=session,
            task_in=task_in,
            owner=principal.name,
            settings=settings,
            audio=audio,
            filename=filename,
            idempotency_key=idempotency_key,
        )
    finally:
        if audio:
            Path(audio.path).unlink(missing_ok=True)
    if not creation.created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return await _detail_with_result(session, creation.task)


@router.get("", response_model=TaskPage, summary="List tasks", description="Newest first, with keyset pagination.")
async def list_tasks(
    session: SessionDep,
    principal: PrincipalDep,
    status: Annotated[TaskStatus | None, Query(description="Only tasks in this state.", examples=["completed"])] = None,
    priority: Annotated[Priority | None, Query(description="Only tasks of this priority.", examples=["high"])] = None,
    task_type: Annotated[TaskType | None, Query(description="transcribe or translate.", examples=["translate"])] = None,
    language: Annotated[
        str | None, Query(description="Language code (requested or detected).", examples=["en"])
    ] = None,
    model: Annotated[str | None, Query(description="Model name.", examples=["base"])] = None,
    created_after: Annotated[
        datetime | None, Query(description="Created at or after (ISO 8601).", examples=["2026-01-01T00:00:00Z"])
    ] = None,
    created_before: Annotated[
        datetime | None, Query(description="Created before (ISO 8601).", examples=["2026-12-31T00:00:00Z"])
    ] = None,
    has_error: Annotated[
        bool | None, Query(description="Only failed (true) or not failed (false).", examples=[True])
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.", examples=[50])] = 50,
    cursor: Annotated[
        str | None,
        Query(
            description="`next_cursor` of the previous page.",
            examples=["WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgImlkIl0"],
        ),
    ] = None,
) -> TaskPage:
    """One page of tasks matching the filters."""
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone, e.g. 2026-01-01T00:00:00Z.", field=name)
    filters = task_service.TaskFilters(
        status=status,
        priority=priority,
        task_type=task_type,
        language=language,
        model=model,
        created_after=created_after,
        created_before=created_before,
        has_error=has_error,
    )
    page = await task_service.list_tasks(
        session=session, owner=principal.scope, filters=filters, limit=limit, cursor=cursor
    )
    return TaskPage(items=[summary_of(t) for t in page.items], total=page.total, next_cursor=page.next_cursor)


@router.get("/{task_id}", response_model=TaskDetail, summary="Get a task", description="Status, progress, result.")
async def get_task(task_id: TaskId, session: SessionDep, principal: PrincipalDep) -> TaskDetail:
    """The task, with its transcript once completed."""
    task = await task_service.get_task(session=session, task_id=task_id, owner=principal.scope)
    return await _detail_with_result(session, task)


@router.post(
    "/{task_id}/cancel",
    response_model=TaskDetail,
    summary="Cancel a task",
    description="A queued task is cancelled at once; a running one stops at its next heartbeat (409 if finished).",
)
async def cancel_task(task_id: TaskId, session: SessionDep, principal: PrincipalDep) -> TaskDetail:
    """Cancel the task and keep its record."""
    return _detail(await task_service.cancel_task(session=session, task_id=task_id, owner=principal.scope), None)


@router.delete(
    "/{task_id}",
    status_code=204,
    summary="Delete a task",
    description="Removes the task with its media and result; a running task is stopped.",
)
async def delete_task(task_id: TaskId, session: SessionDep, principal: PrincipalDep) -> Response:
    """Delete the task."""
    await task_service.delete_task(session=session, task_id=task_id, owner=principal.scope)
    return Response(status_code=204)


@router.get(
    "/{task_id}/result",
    response_model=Transcript,
    summary="Get the transcript",
    description="409 until the task is completed.",
)
async def get_result(task_id: TaskId, session: SessionDep, principal: PrincipalDep) -> Transcript:
    """The transcript of a completed task."""
    task = await task_service.get_task(session=session, task_id=task_id, owner=principal.scope)
    return await task_service.get_result(session=session, task=task)


@router.get(
    "/{task_id}/subtitles",
    summary="Export the transcript",
    description="SRT, WebVTT, LRC, plain text, TSV or JSON. Without layout options each segment is a cue; with them, "
    "cues are built from word timings (spread by length when the task has none) within the given limits. Cues never "
    "overlap, never cross a speaker change and stay inside the audio.",
    response_class=Response,
    responses={200: {"content": {media_type: {} for media_type in MEDIA_TYPES.values()}}},
)
async def get_subtitles(
    task_id: TaskId,
    session: SessionDep,
    principal: PrincipalDep,
    layout: Annotated[SubtitleLayout, Query()],
    format: Annotated[SubtitleFormat, Query(description="Export format.", examples=["srt"])] = SubtitleFormat.srt,
) -> Response:
    """The transcript in the requested format, as a download."""
    task = await task_service.get_task(session=session, task_id=task_id, owner=principal.scope)
    transcript = await task_service.get_result(session=session, task=task)
    stem = Path(task.filename).stem if task.filename else task.id
    return Response(
        render(transcript, format, layout.layout()),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{_ascii(stem)}.{format.value}"'},
    )


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name) or "transcript"


def _summary_fields(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "status": task.status,
        "task_type": task.task_type,
        "priority": Priority.from_rank(task.priority),
        "model": task.model,
        "language": task.language,
        "progress": task.progress,
        "source": task.source,
        "platform": (task.source_meta or {}).get("platform"),
        "filename": task.filename,
        "source_url": task.source_url,
        "duration": task.media_duration,
        "attempts": task.attempts,
        "error": TaskError(type=task.error_type, message=task.error_message or "") if task.error_type else None,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "processing_seconds": task.processing_seconds,
    }


def summary_of(task: Task) -> TaskSummary:
    """The task as lists show it."""
    return TaskSummary(**_summary_fields(task))


async def _detail_with_result(session: AsyncSession, task: Task) -> TaskDetail:
    """The task, with its transcript when it is completed."""
    result = await task_service.get_result(session=session, task=task) if task.status == "completed" else None
    return _detail(task, result)


def _detail(task: Task, result: Transcript | None) -> TaskDetail:
    return TaskDetail(
        **_summary_fields(task),
        options=task.options,
        source_meta=task.source_meta,
        callback_url=task.callback_url,
        reused_from=task.reused_from,
        result=result,
    )


async def _body_fields(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            body = await request.json()
        except ValueError as exc:
            raise InvalidInput(f"The request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidInput("The JSON body must be an object.")
        return body
    if content_type in FORM_TYPES:
        form = await request.form(max_files=0, max_fields=64)
        return _group(form.multi_items())
    raise UnsupportedMediaType("Send application/json or a form with `url` or `text`.")


def _platform_route(platform: str) -> None:
    async def create_platform_task(
        request: Request, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
    ) -> TaskDetail:
        fields = await _body_fields(request)
        shared = fields.pop("url", None) or fields.pop("text", None)
        if not shared:
            raise InvalidInput("Give `url` (a share link) or `text` (share text that contains one).", field="url")
        url = find_url(str(shared))
        if url is None:
            raise InvalidInput("No http(s) link was found in the text.", field="text")
        if detect_platform(url) != platform:
            raise InvalidInput(f"{url} is not a {platform} link.", field="url")
        await check_concurrency(session=session, owner=principal.name, limit=settings.max_concurrent_tasks)
        task_in = parse_task_create({**fields, "file_url": url, "platform": platform})
        creation = await task_service.create_task(
            session=session, task_in=task_in, owner=principal.name, settings=settings
        )
        return _detail(creation.task, None)

    router.add_api_route(
        f"/{platform}",
        create_platform_task,
        methods=["POST"],
        status_code=201,
        response_model=TaskDetail,
        summary=f"Create a task from a {platform.capitalize()} link",
        description=f"JSON or form with `url` (a {platform} share or short link) or `text` (share text containing "
        "one), plus any task option. The worker fetches the audio.",
        name=f"create_{platform}_task",
    )


for _platform in ("tiktok", "douyin"):
    _platform_route(_platform)

"""Task routes: create by upload, raw body or URL; read, list, cancel, delete; result and subtitles."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BeforeValidator
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from app.api.bodies import content_type_of, explicit_filename, group, merge_query, read_json_object, validate
from app.api.deps import PrincipalDep, SessionDep, SettingsDep, TaskId
from app.api.intake import decode_upload, upload_chunks
from app.api.limits import read_form, takes_upload
from app.api.openapi import CREATE_TASK_OPENAPI, platform_openapi
from app.db.models import Task
from app.errors import InvalidInput, NoMediaGiven, UnsupportedMediaType
from app.schemas.subtitles import SubtitleLayout
from app.schemas.tasks import (
    Priority,
    TaskCreate,
    TaskDetail,
    TaskPage,
    TaskStatus,
    TaskSummary,
    TaskType,
)
from app.schemas.transcript import Transcript
from app.services import tasks as task_service
from app.services.admission import Admission, admit
from app.services.media import DecodedMedia
from app.services.platforms import detect_platform, find_url
from app.services.subtitles import MEDIA_TYPES, SubtitleFormat, render
from app.settings import Settings

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?")
"""A date-time as the OpenAPI schema's `date-time` format (RFC 3339) says, seconds included; a missing time zone is
refused afterwards with its own message."""
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
RAW_TYPES = ("audio/", "video/", "application/octet-stream")


def _iso_only(value: object) -> object:
    """Only RFC 3339 text: pydantic would also take seconds since 1970, or a time without seconds, which the schema
    does not allow."""
    if isinstance(value, str) and not RFC3339.fullmatch(value):
        raise ValueError("must be an ISO 8601 date-time with seconds and a time zone, e.g. 2026-01-01T00:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]


def parse_task_create(data: dict[str, Any]) -> TaskCreate:
    """Validate task options; errors name the field."""
    task_in: TaskCreate = validate(TaskCreate, data)
    return task_in


async def _read_request(
    request: Request, settings: Settings, owner: str
) -> tuple[Admission, DecodedMedia | None, str | None]:
    """Options from the body and the query string (any body type), admitted before any upload is decoded."""
    content_type = content_type_of(request)
    query = group(request.query_params.multi_items())
    if content_type in FORM_TYPES:
        form = await read_form(request)
        try:
            upload = form.get("file")
            fields = group((k, v) for k, v in form.multi_items() if k != "file")
            # An upload may be renamed by `filename` (a field or a query parameter); its own name otherwise.
            renamed = explicit_filename(fields.pop("filename", None)) or explicit_filename(query.pop("filename", None))
            task_in = parse_task_create(merge_query(fields, query, TaskCreate))
            if isinstance(upload, UploadFile):
                if task_in.file_url:
                    raise InvalidInput("Give either a file or file_url, not both.", field="file_url")
                admission = admit(task_in, owner=owner, settings=settings)
                return admission, await decode_upload(upload_chunks(upload), settings), renamed or upload.filename
            if upload is not None:
                raise InvalidInput("The `file` field must be a file upload, not text.", field="file")
        finally:
            await form.close()
    elif content_type == "application/json":
        task_in = parse_task_create(merge_query(await read_json_object(request), query, TaskCreate))
    elif content_type.startswith(RAW_TYPES):
        filename = explicit_filename(query.pop("filename", None))
        task_in = parse_task_create(query)
        if task_in.file_url:
            raise InvalidInput("A raw body upload cannot also give file_url.", field="file_url")
        admission = admit(task_in, owner=owner, settings=settings)
        return admission, await decode_upload(request.stream(), settings), filename
    elif content_type:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not accepted: use multipart/form-data with a `file` field, "
            "a raw audio/*, video/* or application/octet-stream body, or application/json with `file_url`."
        )
    else:
        task_in = parse_task_create(query)
    if task_in.file_url is None:
        raise NoMediaGiven()
    return admit(task_in, owner=owner, settings=settings), None, None


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
    responses={
        200: {
            "model": TaskDetail,
            "description": "A repeat of an earlier request with the same Idempotency-Key: "
            "its task, with the header `Idempotent-Replayed: true`.",
        },
        413: {"description": "Upload too large"},
        415: {"description": "Unsupported media"},
    },
)
@takes_upload
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
    admission, audio, filename = await _read_request(request, settings, principal.name)
    try:
        creation = await task_service.create_task(
            session=session,
            admission=admission,
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
        IsoDateTime | None, Query(description="Created at or after (ISO 8601).", examples=["2026-01-01T00:00:00Z"])
    ] = None,
    created_before: Annotated[
        IsoDateTime | None, Query(description="Created before (ISO 8601).", examples=["2026-12-31T00:00:00Z"])
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
    filters = task_service.TaskFilters(
        status=status,
        priority=priority,
        task_type=task_type,
        language=language,
        model=model,
        created_after=_utc("created_after", created_after),
        created_before=_utc("created_before", created_before),
        has_error=has_error,
    )
    page = await task_service.list_tasks(
        session=session, owner=principal.scope, filters=filters, limit=limit, cursor=cursor
    )
    return TaskPage(
        items=[TaskSummary.from_task(t) for t in page.items], total=page.total, next_cursor=page.next_cursor
    )


def _utc(name: str, value: datetime | None) -> datetime | None:
    """The time in UTC; 422 naming the parameter without a time zone or outside the years 1-9999 in UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone, e.g. 2026-01-01T00:00:00Z.", field=name)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput(f"{name} lies outside the years 1 to 9999 in UTC.", field=name) from exc


@router.get("/{task_id}", response_model=TaskDetail, summary="Get a task", description="Status, progress, result.")
async def get_task(task_id: TaskId, session: SessionDep, principal: PrincipalDep) -> TaskDetail:
    """The task, with its transcript once completed."""
    task = await task_service.get_task(session=session, task_id=task_id, owner=principal.scope)
    return await _detail_with_result(session, task)


@router.post(
    "/{task_id}/cancel",
    response_model=TaskDetail,
    summary="Cancel a task",
    description="A queued task is cancelled at once, a running one at its next segment or batch (409 if finished).",
)
async def cancel_task(task_id: TaskId, session: SessionDep, principal: PrincipalDep) -> TaskDetail:
    """Cancel the task and keep its record."""
    return TaskDetail.of(await task_service.cancel_task(session=session, task_id=task_id, owner=principal.scope))


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
    description="SRT, WebVTT, LRC, plain text, TSV or JSON. Cues are built from word timings (spread by length when "
    "the task has none) within the given limits; without any, SRT and WebVTT cues have at most 2 lines of 42 "
    "characters (16 for Chinese, Japanese and Korean) and last at most 7 s, and the other formats give one cue per "
    "segment (`segment_cues=true`: one cue per segment in every format). Cues never overlap, never cross a speaker "
    "change and stay inside the audio.",
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


async def _detail_with_result(session: AsyncSession, task: Task) -> TaskDetail:
    """The task, with its transcript when it is completed."""
    result = await task_service.get_result(session=session, task=task) if task.status == "completed" else None
    return TaskDetail.of(task, result)


async def _body_fields(request: Request) -> dict[str, Any]:
    content_type = content_type_of(request)
    if content_type == "application/json":
        return await read_json_object(request)
    if content_type in FORM_TYPES:
        form = await read_form(request, max_files=0)
        return group(form.multi_items())
    raise UnsupportedMediaType("Send application/json or a form with `url` or `text`.")


def _platform_route(platform: str) -> None:
    async def create_platform_task(
        request: Request, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
    ) -> TaskDetail:
        fields = merge_query(await _body_fields(request), group(request.query_params.multi_items()), TaskCreate)
        shared = fields.pop("url", None) or fields.pop("text", None)
        if not shared:
            raise InvalidInput("Give `url` (a share link) or `text` (share text that contains one).", field="url")
        url = find_url(str(shared))
        if url is None:
            raise InvalidInput("No http(s) link was found in the text.", field="text")
        if detect_platform(url) != platform:
            raise InvalidInput(f"{url} is not a {platform} link.", field="url")
        for name in ("file_url", "platform"):
            if name in fields:
                raise InvalidInput(f"{name} is set by this route; give the link as `url`.", field=name)
        task_in = parse_task_create({**fields, "file_url": url, "platform": platform})
        admission = admit(task_in, owner=principal.name, settings=settings)
        creation = await task_service.create_task(session=session, admission=admission, settings=settings)
        return TaskDetail.of(creation.task)

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
        openapi_extra=platform_openapi(platform),
        responses={415: {"description": "Not JSON or a form."}},
    )


for _platform in ("tiktok", "douyin"):
    _platform_route(_platform)

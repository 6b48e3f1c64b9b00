"""The evl API's task routes (/api/whisper/...): create, query, result, delete, subtitles, extract audio, callback
test; translated onto the task service. A task's evl id is its number."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile as StarletteUpload

from app.api.bodies import content_type_of, group, validate
from app.api.compat.evl import envelope as answers
from app.api.compat.evl.docs import CREATE_OPENAPI, TAG
from app.api.compat.evl.envelope import EvlRoute, envelope, error_response
from app.api.compat.evl.models import MAX_NUMBER, CreateOptions, TaskOptions, TaskQuery
from app.api.deps import PrincipalDep, SessionDep, SettingsDep, reject_unknown_fields
from app.api.extract import TemporaryFileResponse, extract_upload
from app.api.intake import decode_upload, upload_chunks
from app.api.limits import UPLOAD_ERRORS, read_form, takes_upload
from app.db.models import Task
from app.errors import BadRequest, InvalidInput, UnsupportedMediaType
from app.schemas import evl
from app.schemas.extraction import ExtractOptions
from app.schemas.tasks import CallbackPayload, TaskCreate, TaskStatus
from app.services import tasks as task_service
from app.services import webhooks
from app.services.admission import admit
from app.services.auth import Principal
from app.services.extraction import AudioFormat
from app.services.subtitles import MEDIA_TYPES, CueLayout, SubtitleFormat, render
from app.settings import Settings

router = APIRouter(prefix="/api", tags=[TAG], route_class=EvlRoute)

NEITHER = "The file or file_url parameter cannot be empty, you must provide one of them"
BOTH = "The 'file_upload' and 'file_url' parameters cannot be both provided, you must provide only one of them."
BAD_URL = "The format of the file URL is incorrect"
NOT_READY = "This task is not available for generating subtitles."
EXCERPT_CHARS = 512
TaskNumber = Annotated[int, Query(ge=1, le=MAX_NUMBER, description="The task's id (its number).", examples=[7])]


async def task_objects(session: AsyncSession, request: Request, tasks: list[Task]) -> list[dict[str, Any]]:
    """The tasks as evl task objects, with their results and their callbacks' last answers."""
    results = await task_service.results_of(session=session, tasks=tasks)
    attempts = await webhooks.last_attempts(session=session, task_ids=[task.id for task in tasks])
    objects = []
    for task in tasks:
        attempt = attempts.get(task.id)
        record = (
            evl.CallbackRecord(attempt.status_code, (attempt.response_excerpt or "")[:EXCERPT_CHARS], attempt.at)
            if attempt
            else None
        )
        objects.append(evl.task_object(task, results.get(task.id), base_url=str(request.base_url), callback=record))
    return objects


def created_params(task_in: TaskCreate, decode_options: dict[str, Any]) -> dict[str, Any]:
    """The `params` of a create: the decode options, then task_type, priority and callback_url."""
    return {
        **decode_options,
        "task_type": task_in.task_type.value,
        "priority": task_in.priority.value,
        "callback_url": task_in.callback_url or "",
    }


async def create_evl_task(
    *,
    request: Request,
    session: AsyncSession,
    settings: Settings,
    principal: Principal,
    options: TaskOptions,
    file_url: str | None,
    upload: StarletteUpload | None,
    platform: str | None = None,
) -> JSONResponse:
    """Admit and queue a task from evl options (an upload, a URL, or a `platform` page); the evl create answer."""
    task_in: TaskCreate = validate(TaskCreate, {**options.task_fields(), "file_url": file_url, "platform": platform})
    admission = admit(task_in, owner=principal.name, settings=settings)
    decode_options = evl.decode_options(task_in.decode_options(), task_in.language)
    meta: dict[str, Any] = {
        "platform": options.platform or "",
        "base_url": str(request.base_url),
        "decode_options": decode_options,
    }
    audio = None
    if upload is not None:
        meta["file_size_bytes"] = upload.size
        audio = await decode_upload(upload_chunks(upload), settings)
    try:
        creation = await task_service.create_task(
            session=session,
            admission=admission,
            settings=settings,
            audio=audio,
            filename=upload.filename if upload else None,
            callback_payload=CallbackPayload.evl,
            compat_meta={"evl": meta},
        )
    finally:
        if audio is not None:
            audio.path.unlink(missing_ok=True)
    [data] = await task_objects(session, request, [creation.task])
    return envelope(request, data, created_params(task_in, decode_options))


@router.post(
    "/whisper/tasks/create",
    summary="Create task",
    description="Queue a transcription: the media as a multipart `file_upload` or `file_url`, every option in the "
    "query string (an option sent as a form field is refused, naming it). Answers the new task object.",
    openapi_extra=CREATE_OPENAPI,
    responses=UPLOAD_ERRORS,
)
@takes_upload
async def create_task(
    request: Request, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
) -> JSONResponse:
    """Create a task from an upload or a URL."""
    options: CreateOptions = validate(CreateOptions, group(request.query_params.multi_items()))
    content_type = content_type_of(request)
    if content_type not in ("", "multipart/form-data", "application/x-www-form-urlencoded"):
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r} is not accepted: send the media as a multipart/form-data `file_upload` "
            "field, or give `file_url` in the query string and no body."
        )
    form = await read_form(request) if content_type else None
    try:
        upload = _upload_of(form.multi_items() if form else [])
        if upload is not None and options.file_url:
            raise BadRequest(BOTH)
        if upload is None and not options.file_url:
            raise BadRequest(NEITHER)
        if options.file_url:
            parts = urlsplit(options.file_url)
            if not parts.scheme or not parts.netloc:
                raise BadRequest(BAD_URL)
        task_options = TaskOptions.model_validate(options.model_dump(exclude={"file_url"}, exclude_none=True))
        return await create_evl_task(
            request=request,
            session=session,
            settings=settings,
            principal=principal,
            options=task_options,
            file_url=options.file_url,
            upload=upload,
        )
    finally:
        if form is not None:
            await form.close()


def _upload_of(items: list[tuple[str, Any]]) -> StarletteUpload | None:
    """The `file_upload` part (an empty text part counts as none); any other field is refused, naming it."""
    upload = None
    for name, value in items:
        if name != "file_upload":
            where = (
                "a query parameter: send it in the query string"
                if name in CreateOptions.model_fields
                else "not a field of this route (the upload field is `file_upload`)"
            )
            raise InvalidInput(f"{name!r} is {where}.", field=name)
        if isinstance(value, StarletteUpload):
            upload = value
        elif value != "":
            raise InvalidInput("file_upload must be a file upload, not text.", field="file_upload")
    return upload


def _utc(text: str | None) -> datetime | None:
    """An evl time (ISO, local time when it has no zone) in UTC."""
    return datetime.fromisoformat(text).astimezone(UTC) if text else None


@router.post(
    "/whisper/tasks/query",
    summary="Query task",
    description="Tasks in order of creation, `limit` at a time after `offset`. Every field has a default that "
    "filters (completed, normal priority, with a result, without an error); send null to turn a filter off.",
)
async def query_tasks(
    request: Request,
    body: Annotated[TaskQuery, Body(description="Filters and paging.")],
    session: SessionDep,
    principal: PrincipalDep,
) -> JSONResponse:
    """One page of the caller's tasks matching the filters."""
    params = body.model_dump(mode="json")
    tasks: list[Task] = []
    total = 0
    if body.engine_name in (None, evl.ENGINE_NAME):  # every task here runs on faster-whisper
        filters = task_service.TaskFilters(
            statuses=evl.STATUSES_OF[body.status.value] if body.status else None,
            priority=body.priority,
            language=body.language,
            created_after=_utc(body.created_after),
            created_before=_utc(body.created_before),
            has_error=body.has_error,
            has_result=body.has_result,
        )
        tasks, total = await task_service.list_tasks_by_offset(
            session=session, owner=principal.scope, filters=filters, limit=body.limit, offset=body.offset
        )
    more = body.offset + body.limit < total
    data = {
        "tasks": await task_objects(session, request, tasks),
        "total_count": total,
        "has_more": more,
        "next_offset": body.offset + body.limit if more else None,
    }
    return envelope(request, data, params)


@router.delete(
    "/whisper/tasks/delete", summary="Delete task by task ID", description="Removes the task, whatever its state."
)
async def delete_task(
    request: Request, task_id: TaskNumber, session: SessionDep, principal: PrincipalDep
) -> JSONResponse:
    """Delete the task with this id."""
    task = await task_service.get_task_by_number(session=session, number=task_id, owner=principal.scope)
    await task_service.delete_task(session=session, task_id=task.id, owner=principal.scope)
    return envelope(request, {"task_id": task_id, "message": "Task deleted successfully"}, dict(request.query_params))


async def finished_task(request: Request, session: AsyncSession, principal: Principal, number: int) -> Task | Response:
    """The completed task with this number, or the evl answer for one that is not: 202 queued or processing,
    500 failed."""
    task = await task_service.get_task_by_number(session=session, number=number, owner=principal.scope)
    if task.status == TaskStatus.queued:
        return error_response(request, 202, answers.QUEUED)
    if task.status == TaskStatus.running:
        return error_response(request, 202, answers.PROCESSING)
    if task.status != TaskStatus.completed:
        return error_response(request, 500, answers.FAILED)
    return task


@router.get(
    "/whisper/tasks/result",
    summary="Get task result",
    description="200 with the task object once completed; 202 while queued or processing, 500 if it failed (its "
    "`error_message` is in /api/whisper/tasks/query), 404 if unknown.",
)
async def task_result(request: Request, task_id: TaskNumber, session: SessionDep, principal: PrincipalDep) -> Response:
    """The task, with its result, once completed."""
    task = await finished_task(request, session, principal, task_id)
    if isinstance(task, Response):
        return task
    [data] = await task_objects(session, request, [task])
    return envelope(request, data, dict(request.query_params))


DEMO_CALLBACK: dict[str, Any] = {
    "id": 1,
    "status": "completed",
    "callback_url": "http://127.0.0.1/api/whisper/callback/test",
    "priority": "normal",
    "engine_name": evl.ENGINE_NAME,
    "task_type": "transcribe",
    "file_name": "demo.mp3",
    "language": "en",
    "result": {"text": "And so, my fellow Americans, ask not what your country can do for you.", "segments": []},
}


@router.post(
    "/whisper/callback/test",
    summary="Test callback interface",
    description="A sample receiver: answers the JSON object it was sent (an empty object: a demo task). Point a "
    "task's `callback_url` here to see a callback. No key needed.",
)
async def callback_test(
    request: Request,
    body: Annotated[dict[str, Any], Body(description="Any JSON object, e.g. a callback body.", examples=[{}])],
) -> JSONResponse:
    """Echo the callback body."""
    data = body or DEMO_CALLBACK
    return envelope(request, {"message": "Callback interface test successful.", "callback_data": data}, data)


EXTRACT_TYPES = {AudioFormat.wav: "audio/wav", AudioFormat.mp3: "audio/mp3"}


@router.post(
    "/whisper/extract_audio",
    summary="Extract audio from a video file",
    description="Multipart `file` (video or audio), `sample_rate`, `bit_depth` (bytes per sample: 2, 3 or 4; wav "
    "only) and `output_format` (wav or mp3): the mono audio track as `extracted_audio.<format>`.",
    response_class=Response,
    responses={200: {"content": {media_type: {} for media_type in EXTRACT_TYPES.values()}}, **UPLOAD_ERRORS},
    dependencies=[Depends(reject_unknown_fields)],
)
@takes_upload
async def extract_audio(
    settings: SettingsDep,
    principal: PrincipalDep,
    file: Annotated[UploadFile, File(description="The video (or audio) file.")],
    sample_rate: Annotated[int, Form(ge=8000, le=48000, description="Samples per second.", examples=[22050])] = 22050,
    bit_depth: Annotated[int, Form(description="Bytes per sample: 2, 3 or 4.", examples=[2])] = 2,
    output_format: Annotated[Literal["wav", "mp3"], Form(description="wav or mp3.", examples=["wav"])] = "wav",
) -> Response:
    """The audio track, converted."""
    fmt = AudioFormat(output_format)
    if fmt is AudioFormat.wav and bit_depth not in (2, 3, 4):
        raise InvalidInput("bit_depth is in bytes per sample: 2 (16-bit), 3 (24-bit) or 4 (32-bit).", field="bit_depth")
    bits = bit_depth * 8 if fmt is AudioFormat.wav else 16  # mp3 has no bit depth
    options = ExtractOptions(output_format=fmt, sample_rate=sample_rate, channels=1, bit_depth=bits)
    output = await extract_upload(file, options, settings)
    return TemporaryFileResponse(output, media_type=EXTRACT_TYPES[fmt], filename=f"extracted_audio.{fmt.value}")


SUBTITLE_TYPES = {SubtitleFormat.srt: "text/srt; charset=utf-8", SubtitleFormat.vtt: "text/vtt; charset=utf-8"}


@router.get(
    "/whisper/generate_subtitles",
    summary="Generate subtitles file",
    description="The transcript of a completed task as a download: `srt` (default) or `vtt`; also lrc, txt, tsv, "
    "json. 400 before the task is completed.",
    response_class=Response,
    responses={200: {"content": {"text/srt": {}, "text/vtt": {}}}},
)
async def generate_subtitles(
    request: Request,
    task_id: TaskNumber,
    session: SessionDep,
    principal: PrincipalDep,
    output_format: Annotated[
        str, Query(description="srt, vtt (or lrc, txt, tsv, json).", examples=["vtt"], max_length=8)
    ] = "srt",
) -> Response:
    """Subtitles of the task."""
    if output_format not in SubtitleFormat.__members__:
        names = ", ".join(SubtitleFormat.__members__)
        raise InvalidInput(f"output_format must be one of {names}.", field="output_format")
    fmt = SubtitleFormat(output_format)
    task = await task_service.get_task_by_number(session=session, number=task_id, owner=principal.scope)
    if task.status != TaskStatus.completed:
        return error_response(request, 400, NOT_READY)
    transcript = await task_service.get_result(session=session, task=task)
    return Response(
        render(transcript, fmt, CueLayout(segment_cues=True)),  # evl.md 5.8: one cue per segment
        media_type=SUBTITLE_TYPES.get(fmt, MEDIA_TYPES[fmt]),
        headers={"Content-Disposition": f'attachment; filename="Task_{task_id}_Subtitle.{fmt.value}"'},
    )


@router.get(
    "/health/check",
    summary="Check if the server responds to requests correctly",
    description='`{"status": "ok"}` while the process runs. No key needed.',
)
async def health_check() -> JSONResponse:
    """Alive."""
    return JSONResponse({"status": "ok"})

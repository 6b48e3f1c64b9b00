"""Application errors: each class carries its HTTP status, its docstring is the default message."""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """The request could not be served."""

    status_code: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or (self.__doc__ or self.title).strip()
        self.extra = extra
        super().__init__(self.detail)

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers (Retry-After, WWW-Authenticate...)."""
        return {}

    @property
    def type_name(self) -> str:
        """The class name, used as the problem `type` and stored on failed tasks."""
        return type(self).__name__


class BadRequest(AppError):
    """The request is malformed."""

    status_code = 400
    title = "Bad request"


class InvalidInput(AppError):
    """A field has an invalid value."""

    status_code = 422
    title = "Invalid input"


class NoMediaGiven(InvalidInput):
    """Send the audio as a multipart `file`, as a raw body with an audio/video Content-Type, or give `file_url`."""


class EmptyUpload(BadRequest):
    """The uploaded media is empty."""


class UploadTooLarge(AppError):
    """The upload is larger than the server accepts."""

    status_code = 413
    title = "Upload too large"


class UnsupportedMediaType(AppError):
    """This Content-Type is not accepted here."""

    status_code = 415
    title = "Unsupported media type"


class UnsupportedMedia(UnsupportedMediaType):
    """The file is not audio or video in a supported format."""


class UnreadableMedia(InvalidInput):
    """The media file is damaged or truncated and could not be decoded."""


class NoAudioStream(InvalidInput):
    """The media file has no audio stream."""


class AudioTooLong(InvalidInput):
    """The audio is longer than the server accepts."""


class UnknownModel(InvalidInput):
    """The model is not one this server offers."""


class IdempotencyKeyReused(InvalidInput):
    """This Idempotency-Key was already used for a different request."""


class TaskNotFound(AppError):
    """No task with this id."""

    status_code = 404
    title = "Not found"


class TaskNotFinished(AppError):
    """The task has no result yet."""

    status_code = 409
    title = "Conflict"


class TaskAlreadyFinished(AppError):
    """The task has already finished."""

    status_code = 409
    title = "Conflict"


class TranscriptionFailed(AppError):
    """The transcription engine failed."""


class MediaFetchFailed(AppError):
    """The media could not be fetched from its URL."""

    status_code = 502
    title = "Bad gateway"


class URLNotAllowed(InvalidInput):
    """The URL is not allowed: only http(s) URLs whose host resolves to public addresses."""


class LeaseLost(Exception):
    """The worker no longer holds the task (lease expired, taken over, cancelled or deleted)."""


class TaskCancelled(LeaseLost):
    """The task was cancelled while it ran."""


class SummaryNotFound(TaskNotFound):
    """No summary with this id."""


class LLMNotConfigured(AppError):
    """Summaries need an LLM: set WHISPER_LLM_BASE_URL (OpenAI-compatible endpoint) and/or WHISPER_LLM_API_KEY."""

    status_code = 503
    title = "Service unavailable"


class LLMFailed(AppError):
    """The LLM endpoint refused or failed the summary request."""

    status_code = 502
    title = "Bad gateway"


class LLMTimeout(LLMFailed):
    """The LLM endpoint did not answer in time (WHISPER_LLM_TIMEOUT_SECONDS)."""

    status_code = 504
    title = "Gateway timeout"

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


class BodyTooLarge(AppError):
    """The request body is larger than the server accepts."""

    status_code = 413
    title = "Request body too large"


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


class OutputTooLarge(InvalidInput):
    """The converted audio would be larger than the server writes."""


class UnknownModel(InvalidInput):
    """The model is not one this server offers."""


class LanguageNotInModel(InvalidInput):
    """The model has no token for this language: leave `language` empty to detect it, or use a model that knows it."""


class ModelUnavailable(AppError):
    """The model could not be loaded on this worker; use a bundled model (base, tiny.en) or a pre-downloaded one."""

    status_code = 503
    title = "Service unavailable"


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


class FetchTimedOut(MediaFetchFailed):
    """Fetching the media took longer than WHISPER_FETCH_TIMEOUT_SECONDS: give a faster link, or upload the file."""


class NoMediaOnPage(MediaFetchFailed):
    """No audio or video was found at this link: check the link, or give a direct link to the media file."""


class StreamOnlyMedia(MediaFetchFailed):
    """The page offers only HLS/DASH streams, which are not downloaded here: give a direct media link or upload."""


class URLNotAllowed(InvalidInput):
    """The URL is not allowed: only http(s) URLs whose host resolves to public addresses."""


class LeaseLost(Exception):
    """The worker no longer holds the task (lease expired, taken over, cancelled or deleted)."""


class TaskCancelled(LeaseLost):
    """The task was cancelled while it ran."""


class TaskDeleted(LeaseLost):
    """The task was deleted while it ran."""


class LeaseExpired(AppError):
    """The worker running this task stopped responding too many times; giving up."""


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


class LLMAnswerTooLarge(LLMFailed):
    """The LLM's answer is longer than WHISPER_LLM_MAX_OUTPUT_TOKENS allows; it was refused, not stored."""


class LLMModelNotAllowed(InvalidInput):
    """This model is not allowed for summaries (WHISPER_LLM_ALLOWED_MODELS)."""


class LLMTimeout(LLMFailed):
    """The LLM endpoint did not answer in time (WHISPER_LLM_TIMEOUT_SECONDS)."""

    status_code = 504
    title = "Gateway timeout"


class Unauthorized(AppError):
    """A valid API key is required: send `Authorization: Bearer <key>`, `X-API-Key: <key>` or `X-Token: <key>`."""

    status_code = 401
    title = "Unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        """Tell the client which scheme to use."""
        return {"WWW-Authenticate": "Bearer"}


class KeyNameTaken(AppError):
    """An API key of this name exists already (names are tenants: one key per name)."""

    status_code = 409
    title = "Conflict"


class KeyNotFound(AppError):
    """No API key of this name is in the database."""

    status_code = 404
    title = "Not found"


class RateLimited(AppError):
    """Too many requests for this API key."""

    status_code = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        """When to try again."""
        return {"Retry-After": str(self.retry_after)}


class ModelNotFound(AppError):
    """The model does not exist on this server."""

    status_code = 404
    title = "Not found"


class DiarizationUnavailable(AppError):
    """Speaker diarization is not installed on this worker: `pip install whisper-service[diarize]` (with torch)."""

    status_code = 501
    title = "Not implemented"


class ModelFilesCorrupt(RuntimeError):
    """A bundled model's weights do not match their pinned checksum."""


class TranscriptionInterrupted(Exception):
    """The caller asked the engine to stop (cancelled task, lost lease, shutdown)."""


class PageNotMedia(Exception):
    """The URL answered with a web page: hand it to yt-dlp."""


class StartupCheckFailed(Exception):
    """This node cannot work with its configuration; the message names the variable to change."""

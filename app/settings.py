"""Service configuration, read once from `WHISPER_*` environment variables."""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda"]
ComputeType = Literal[
    "auto",
    "default",
    "int8",
    "int8_float16",
    "int8_float32",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
]


def _split_csv(value: object) -> object:
    """Accept `a,b,c` from an environment variable as a list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def check_webhook_secret(secret: str) -> None:
    """Refuse a signing secret that is not `whsec_` + base64 of at least 16 bytes (Standard Webhooks)."""
    if not secret.startswith("whsec_"):
        raise ValueError("a webhook secret must start with whsec_ (Standard Webhooks)")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret must be whsec_ followed by base64") from None
    if len(key) < 16:
        raise ValueError("a webhook secret must hold at least 16 bytes (24 base64 characters)")


class Settings(BaseSettings):
    """Every setting has a `WHISPER_` environment variable of the same name in upper case."""

    model_config = SettingsConfigDict(
        env_prefix="WHISPER_", extra="ignore", validate_default=True, populate_by_name=True
    )

    data_dir: Path = Field(Path("data"), description="Directory for the SQLite database, model cache and temp files.")
    model_cache_dir: Path | None = Field(
        None, description="Where bundled models are assembled (about 150 MB); default `models/` in the data directory."
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy async URL: `sqlite+aiosqlite:///path.db` or `mysql+asyncmy://user:pw@host/db`. "
        "Default: a SQLite file `whisper.db` under the data directory.",
    )
    default_model: str = Field(
        "base",
        validation_alias=AliasChoices("WHISPER_DEFAULT_MODEL", "MODEL_SIZE"),
        description="Model used when a request names none (`base` and `tiny.en` are bundled).",
    )
    default_language: str | None = Field(
        None,
        validation_alias=AliasChoices("WHISPER_DEFAULT_LANGUAGE", "LANGUAGE"),
        description="Language used when a request names none; empty means detect.",
    )
    extra_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated model names or directories allowed besides the bundled and hub names.",
    )
    device: Device = Field("auto", description="`auto` picks CUDA when CTranslate2 sees a GPU, else CPU.")
    device_index: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [0], description="GPU indexes one model is spread over, e.g. `0,1`."
    )
    compute_type: ComputeType = Field("auto", description="`auto`: int8 on CPU, float16 on CUDA.")
    cpu_threads: int = Field(0, ge=0, description="CTranslate2 threads per model on CPU; 0 lets it choose.")
    batch_size: int = Field(8, ge=1, le=128, description="Windows decoded together by the batched pipeline.")
    host: str = Field("127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `serve` listens on.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated `key` or `name:key` items; a name starting with `admin` sees every task.",
    )
    access_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("WHISPER_ACCESS_TOKEN", "ACCESS_TOKEN"),
        description="One more key (the seed service's ACCESS_TOKEN), named `default`.",
    )
    rate_limit_per_minute: int = Field(0, ge=0, description="Requests per minute per key on this API node; 0: off.")
    max_concurrent_tasks: int = Field(0, ge=0, description="Queued + running tasks per key; 0: no limit.")
    max_upload_bytes: int = Field(
        1024**3, ge=1024, description="Largest accepted upload or raw body, in bytes (413 past it)."
    )
    max_audio_seconds: float = Field(
        4 * 3600, gt=0, description="Longest accepted audio after decoding, in seconds (422 past it)."
    )
    media_bitrate: int = Field(
        0,
        ge=0,
        le=256_000,
        description="How the 16 kHz mono copy of the audio is kept in the database until the task ends: 0, lossless "
        "FLAC (about 1 MB per minute of speech); 6000-256000, Opus at this bit rate (32000: about 0.23 MB/min), "
        "smaller but lossy, which can change transcripts and speaker counts.",
    )
    worker_concurrency: int = Field(
        1, ge=1, le=64, description="Tasks one worker process runs at once (spread over WHISPER_DEVICE_INDEX)."
    )
    preload_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated models a worker loads at start (others load on first use)."
    )
    model_idle_seconds: float = Field(
        900.0, ge=0, description="Unload a model no task used for this long; 0 keeps models loaded."
    )
    embedded_workers: int = Field(1, ge=0, le=64, description="Worker processes `serve` starts beside the API.")
    lease_seconds: float = Field(60.0, gt=1, description="How long a claim lasts without a heartbeat.")
    heartbeat_seconds: float = Field(15.0, gt=0, description="How often a running task extends its lease.")
    reap_seconds: float = Field(
        5.0, gt=0, description="How often each worker requeues expired leases and refreshes its own record."
    )
    worker_name: str = Field(
        "", max_length=100, description="Name this host's workers report (default: the host name)."
    )
    poll_seconds: float = Field(0.1, gt=0, description="How often an idle worker looks for queued tasks.")
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long running tasks may finish before they are given back."
    )
    max_attempts: int = Field(3, ge=1, le=100, description="Runs a task may start before it is failed.")
    webhook_secret: SecretStr | None = Field(
        None, description="`whsec_...` secret that signs callbacks (Standard Webhooks); needed for callback_url."
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=120, description="Timeout of one callback attempt.")
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        description="Seconds before each retry of a failed callback (default: 7 retries over about 27 hours).",
    )
    douyin_cookies_file: Path | None = Field(
        None, description="Netscape cookies file yt-dlp sends to Douyin (it often refuses anonymous requests)."
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Outbound allowlist: hosts or CIDR ranges that may be non-global."
    )
    llm_base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("WHISPER_LLM_BASE_URL", "OPENAI_BASE_URL"),
        description="OpenAI-compatible endpoint for summaries, e.g. `http://ollama:11434/v1`; unset: OpenAI.",
    )
    llm_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("WHISPER_LLM_API_KEY", "OPENAI_API_KEY"),
        description="Key for the summary LLM (never shown in responses or logs).",
    )
    llm_model: str = Field("gpt-4o-mini", description="Model a summary uses when the request names none.")
    llm_context_tokens: int = Field(
        8192, ge=1024, description="Context window of the summary model; longer transcripts are summarised in parts."
    )
    llm_max_output_tokens: int = Field(1024, ge=64, description="Longest summary (and partial summary), in tokens.")
    llm_timeout_seconds: float = Field(120.0, gt=0, description="Timeout of one LLM request.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["json", "text"] = Field(
        "json", description="`json`: one JSON object a line with task_id and worker_id; `text`: for a terminal."
    )

    _split = field_validator(
        "extra_models",
        "device_index",
        "allowed_hosts",
        "api_keys",
        "webhook_retry_schedule",
        "preload_models",
        mode="before",
    )(_split_csv)

    @field_validator("media_bitrate")
    @classmethod
    def _opus_range(cls, value: int) -> int:
        if 0 < value < 6000:
            raise ValueError("use 0 for lossless FLAC, or an Opus bit rate of at least 6000")
        return value

    @field_validator(
        "webhook_secret", "llm_api_key", "llm_base_url", "access_token", "douyin_cookies_file", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("default_language", mode="before")
    @classmethod
    def _empty_language_is_auto(cls, value: object) -> object:
        return None if value in ("", "auto") else value

    @model_validator(mode="after")
    def _check_heartbeat(self) -> Settings:
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ValueError("WHISPER_HEARTBEAT_SECONDS must be at most half of WHISPER_LEASE_SECONDS")
        return self

    @model_validator(mode="after")
    def _check_llm_context(self) -> Settings:
        # Room for the instructions and for combining partial summaries two at a time (see services/summaries.py).
        if self.llm_context_tokens < 3 * self.llm_max_output_tokens + 512:
            raise ValueError("WHISPER_LLM_CONTEXT_TOKENS must be at least 3 x WHISPER_LLM_MAX_OUTPUT_TOKENS + 512")
        return self

    @field_validator("webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_webhook_secret(value.get_secret_value())
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_are_well_formed(cls, value: list[str]) -> list[str]:
        for item in value:
            key = item.split(":", 1)[-1]
            if len(key) < 8:
                raise ValueError("every API key must be at least 8 characters long")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'whisper.db').resolve()}"

    @property
    def llm_configured(self) -> bool:
        """Whether summaries can run: an endpoint or a key is set."""
        return bool(self.llm_base_url) or self.llm_api_key is not None

    @property
    def model_dir(self) -> Path:
        """Where bundled models are assembled."""
        return self.model_cache_dir or self.data_dir / "models"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; invalid values raise with the variable named."""
    return Settings()


def describe_error(exc: Exception) -> str:
    """Turn a settings validation error into lines naming the environment variables."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for err in exc.errors():
        name = "WHISPER_" + "_".join(str(p) for p in err["loc"]).upper() if err["loc"] else "configuration"
        lines.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)

"""Service configuration, read once from `WHISPER_*` environment variables."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.languages import language_code

log = logging.getLogger(__name__)

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
ChineseScriptName = Literal["none", "simplified", "traditional", "taiwan", "hongkong"]
"""The values of WHISPER_DEFAULT_CHINESE_SCRIPT (app.schemas.tasks.ChineseScript, which a test keeps equal)."""


def _split_csv(value: object) -> object:
    """Accept `a,b,c` from an environment variable as a list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _index_list(value: object) -> list[int] | None:
    """GPU indexes as WHISPER_DEVICE_INDEX gives them (`1`, `0,1`, a list); None when they are not numbers."""
    items = _split_csv(str(value) if isinstance(value, int) else value)
    try:
        return [int(item) for item in items] if isinstance(items, list) else None
    except (TypeError, ValueError):
        return None


def split_device(data: dict[str, Any]) -> dict[str, Any]:
    """`WHISPER_DEVICE=cuda:1` (or `cuda:0,1`, as torch and other Whisper servers write it) as device `cuda` with
    WHISPER_DEVICE_INDEX `1`; an explicit WHISPER_DEVICE_INDEX naming other GPUs is refused."""
    device = data.get("device")
    if not isinstance(device, str) or ":" not in device:
        return data
    name, _, given = (part.strip() for part in device.partition(":"))
    if name != "cuda":
        raise ValueError(
            f"WHISPER_DEVICE={device!r}: only cuda takes GPU indexes (cuda:1 or cuda:0,1); use auto, cpu or cuda"
        )
    indexes = _index_list(given)
    if not indexes or min(indexes) < 0:
        raise ValueError(f"WHISPER_DEVICE={device!r}: after cuda: give GPU indexes, such as cuda:1 or cuda:0,1")
    explicit = data.get("device_index")
    if explicit is not None and _index_list(explicit) is None:
        return {**data, "device": "cuda"}  # WHISPER_DEVICE_INDEX's own check names what is wrong with it
    if explicit is not None and _index_list(explicit) != indexes:
        raise ValueError(
            f"WHISPER_DEVICE={device!r} and WHISPER_DEVICE_INDEX={explicit!r} name different GPUs; set one of "
            f"them (cuda:{given} is WHISPER_DEVICE=cuda with WHISPER_DEVICE_INDEX={given})"
        )
    return {**data, "device": "cuda", "device_index": indexes}


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


def default_data_dir() -> Path:
    """One directory per user, whatever the current directory: `$XDG_DATA_HOME/whisper-service`, else
    `~/.local/share/whisper-service` (the XDG spec ignores an empty or relative XDG_DATA_HOME)."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "whisper-service"


MAX_RETENTION_SECONDS = 10 * 365 * 24 * 3600
"""The longest a finished task may be kept before it is deleted, server-wide or per task (ten years)."""

DATABASE_DRIVERS = ("sqlite+aiosqlite", "mysql+asyncmy", "postgresql+asyncpg")
"""The async drivers the service runs on."""
_DATABASE_HINT = (
    "use sqlite+aiosqlite:///path/whisper.db, mysql+asyncmy://user:password@host:3306/db or "
    "postgresql+asyncpg://user:password@host:5432/db"
)
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")


def _allowlist_problem(entry: str) -> str | None:
    """Why an allowlist entry can never match (outbound.py compares host names exactly and addresses by range)."""
    if "://" in entry:
        return f"{entry!r} holds a scheme: give a host name, an IP address or a CIDR range"
    if "/" in entry:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"{entry!r} is not a valid CIDR range (such as 10.0.0.0/8 or fd00::/8)"
        return None
    if ":" in entry:
        try:
            ipaddress.ip_address(entry)
        except ValueError:
            return f"{entry!r} is not an IP address (give a host name, an address or a CIDR range; no scheme or port)"
        return None
    if not _HOST_NAME.fullmatch(entry):
        return f"{entry!r} is not a host name, an IP address or a CIDR range"
    return None


def parse_api_key(item: str) -> tuple[str, str]:
    """`name:key` or `key`: the name ends at the first colon; the key is the rest (it may hold colons)."""
    name, colon, key = item.partition(":")
    return (name, key) if colon else ("", item)


def _key_problem(key: str) -> str | None:
    """Why a key could never be sent in an Authorization header, or is too weak; None if it is fine."""
    if any(c.isspace() for c in key):
        return "holds a space (no spaces around the colon or inside a key)"
    if not (key.isascii() and key.isprintable()):
        return "holds characters other than printable ASCII, which HTTP clients cannot send in a header"
    if len(key) < 8:
        return "is shorter than 8 characters: every API key must be at least 8 characters long"
    return None


class _LanguageAlias(PydanticBaseSettingsSource):
    """`LANGUAGE` as other Whisper servers take it; the POSIX locale list of the same name is ignored."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        value = os.environ.get("LANGUAGE", "")
        if not value.strip():
            return {}
        try:
            return {"default_language": language_code(value)}
        except ValueError:
            # Many desktops set LANGUAGE=en_US:en for gettext; it says nothing about the audio.
            log.warning(
                "ignoring LANGUAGE=%r: not a language code or name (a locale list?); "
                "set WHISPER_DEFAULT_LANGUAGE to choose the default language",
                value,
            )
            return {}


class Settings(BaseSettings):
    """Every setting has a `WHISPER_` environment variable of the same name in upper case."""

    # hide_input_in_errors: a cross-field error's input is every variable, secrets included (see describe_error).
    model_config = SettingsConfigDict(
        env_prefix="WHISPER_", extra="ignore", validate_default=True, populate_by_name=True, hide_input_in_errors=True
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Directory for the SQLite database, model cache and temp files; default "
        "`$XDG_DATA_HOME/whisper-service` or `~/.local/share/whisper-service`.",
    )
    model_cache_dir: Path | None = Field(
        None, description="Where bundled models are assembled (about 150 MB); default `models/` in the data directory."
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy async URL: `sqlite+aiosqlite:///path.db`, `mysql+asyncmy://user:pw@host/db` or "
        "`postgresql+asyncpg://user:pw@host/db`. "
        "Default: a SQLite file `whisper.db` under the data directory.",
    )
    default_model: str = Field(
        "base",
        validation_alias=AliasChoices("WHISPER_DEFAULT_MODEL", "MODEL_SIZE"),
        description="Model used when a request names none or `whisper-1` (`base` and `tiny.en` are bundled); "
        "whisper-api's `MODEL_SIZE` is read too.",
    )
    default_language: str | None = Field(
        None,
        description="Language used when a request names none: a code (`zh`) or English name (`Chinese`); empty or "
        "`auto` means detect. `LANGUAGE` is read too when it names a language.",
    )
    default_chinese_script: ChineseScriptName = Field(
        "none",
        description="Script of Chinese results when a request names none: `none` (as the model writes), "
        "`simplified`, `traditional`, `taiwan` (Taiwan characters and phrasing) or `hongkong`. The distributed "
        "service's routes give Traditional unless this names a Traditional script.",
    )
    extra_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated model names or directories allowed besides the bundled and hub names.",
    )
    allow_model_downloads: bool = Field(
        True,
        description="Offer faster-whisper's hub names (`small`, `large-v3`, ...), downloaded on first use; `false` "
        "offers only the bundled, WHISPER_EXTRA_MODELS and WHISPER_PRELOAD_MODELS models, loaded from local files.",
    )
    device: Device = Field(
        "auto",
        description="`auto` picks CUDA when CTranslate2 sees a GPU, else CPU; `cuda:1` is cuda on GPU 1 (the "
        "same as WHISPER_DEVICE_INDEX=1).",
    )
    device_index: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [0], description="GPU indexes one model is spread over, e.g. `0,1`."
    )
    compute_type: ComputeType = Field("auto", description="`auto`: int8 on CPU, float16 on CUDA.")
    cpu_threads: int = Field(0, ge=0, description="CTranslate2 threads per model on CPU; 0 lets it choose.")
    batching: bool = Field(
        True,
        description="Decode the windows of every task a worker runs at once together, in shared batches "
        "(continuous batching); `false` decodes each task on its own.",
    )
    batch_size: int = Field(
        0,
        ge=0,
        le=128,
        description="Windows (30 s each) decoded in one forward pass; 0 picks by device: 8 on CPU, 16 on CUDA.",
    )
    host: str = Field("127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `serve` listens on.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated `key` or `name:key` items; a name starting with `admin` sees every task.",
    )
    access_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("WHISPER_ACCESS_TOKEN", "ACCESS_TOKEN"),
        description="One more key, named `default`; whisper-api's `ACCESS_TOKEN` is read too.",
    )
    key_cache_seconds: float = Field(
        5.0,
        ge=0,
        le=300,
        description="How long an API node uses its copy of the database's API keys before reading them again: a "
        "key made or revoked with `whisper-service keys` counts on every node within this time.",
    )
    rate_limit_per_minute: int = Field(0, ge=0, description="Requests per minute per key on this API node; 0: off.")
    auth_failures_per_minute: int = Field(
        20,
        ge=0,
        description="Wrong keys per minute per client address on this API node (no key at all is not counted); "
        "past it the address gets 429 (no key is checked) until the minute has passed; 0: off.",
    )
    max_concurrent_tasks: int = Field(0, ge=0, description="Queued + running tasks per key; 0: no limit.")
    max_event_streams: int = Field(
        10, ge=0, description="Event streams (SSE) one key may hold open per API node (429 past it); 0: no limit."
    )
    max_upload_bytes: int = Field(
        1024**3, ge=1024, description="Largest accepted upload or raw body, in bytes (413 past it)."
    )
    max_body_bytes: int = Field(
        1024**2,
        ge=1024,
        description="Largest accepted body that is not an upload (JSON, url-encoded forms), in bytes (413 past it).",
    )
    max_extract_bytes: int = Field(
        1024**3, ge=1024, description="Largest file /v1/media/extract-audio writes, in bytes (422 past it)."
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
        0,
        ge=0,
        le=64,
        description="Tasks one worker process runs at once (spread over WHISPER_DEVICE_INDEX); 0: twice the batch "
        "size with WHISPER_BATCHING, else 1.",
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
    retention_seconds: int = Field(
        0,
        ge=0,
        le=MAX_RETENTION_SECONDS,
        description="Delete finished tasks (completed, failed, cancelled) with everything they own this many seconds "
        "after they finish; 0 keeps them until deleted. A task may ask for less (`delete_after_seconds`), not more.",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="`whsec_...` secret that signs callbacks (Standard Webhooks); unset: a secret generated once for "
        "the cluster and kept in the database (`whisper-service webhook-secret` shows it).",
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="Total time one callback attempt may take, reading the reply included."
    )
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0],
        description="Seconds before each retry of a failed callback (default: 7 retries over about 27 hours).",
    )
    fetch_timeout_seconds: float = Field(
        600.0,
        gt=0,
        description="Longest a worker spends fetching one task's media (page, redirects and download) before the "
        "task fails; a server that trickles cannot hold a worker longer.",
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
    llm_allowed_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated further models a summary request may name (WHISPER_LLM_MODEL always may); "
        "requests run on the operator's key, so no other model is accepted.",
    )
    llm_context_tokens: int = Field(
        8192, ge=1024, description="Context window of the summary model; longer transcripts are summarised in parts."
    )
    llm_max_output_tokens: int = Field(1024, ge=64, description="Longest summary (and partial summary), in tokens.")
    llm_timeout_seconds: float = Field(
        120.0, gt=0, description="Total time one LLM request may take (it is not retried)."
    )
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
        "llm_allowed_models",
        mode="before",
    )(_split_csv)

    @model_validator(mode="before")
    @classmethod
    def _device_with_index(cls, data: Any) -> Any:
        return split_device(data) if isinstance(data, dict) else data

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """WHISPER_* first, then the LANGUAGE alias (a separate source, so that a bad one can be told apart)."""
        return init_settings, env_settings, dotenv_settings, file_secret_settings, _LanguageAlias(settings_cls)

    @field_validator("default_chinese_script", mode="before")
    @classmethod
    def _empty_script_is_none(cls, value: object) -> object:
        return "none" if value == "" else value

    @field_validator("default_language", mode="before")
    @classmethod
    def _language_code(cls, value: object) -> object:
        return language_code(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_heartbeat(self) -> Settings:
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ValueError(
                f"WHISPER_HEARTBEAT_SECONDS ({self.heartbeat_seconds:g}) must be at most half of "
                f"WHISPER_LEASE_SECONDS ({self.lease_seconds:g})"
            )
        return self

    @model_validator(mode="after")
    def _check_llm_context(self) -> Settings:
        # Room for the instructions and for combining partial summaries two at a time (see services/summaries.py).
        if self.llm_context_tokens < 3 * self.llm_max_output_tokens + 512:
            raise ValueError(
                f"WHISPER_LLM_CONTEXT_TOKENS ({self.llm_context_tokens}) must be at least 3 x "
                f"WHISPER_LLM_MAX_OUTPUT_TOKENS ({self.llm_max_output_tokens}) + 512"
            )
        return self

    @field_validator("allowed_hosts")
    @classmethod
    def _allowlist_entries_can_match(cls, value: list[str]) -> list[str]:
        for entry in value:
            if (problem := _allowlist_problem(entry)) is not None:
                raise ValueError(problem)
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        # The message never holds the URL: it may hold a password.
        if not value:
            return value
        try:
            driver = make_url(value).drivername
        except ArgumentError:
            raise ValueError(f"not a database URL; {_DATABASE_HINT}") from None
        if driver not in DATABASE_DRIVERS:
            raise ValueError(f"the scheme {driver!r} is not supported; {_DATABASE_HINT}")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_webhook_secret(value.get_secret_value())
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_are_well_formed(cls, value: list[str]) -> list[str]:
        # Messages name items by position, never by key: the key is a secret.
        seen: dict[str, int] = {}
        for number, item in enumerate(value, start=1):
            name, key = parse_api_key(item)
            if name != name.strip():
                raise ValueError(f"item {number}: the name holds a space (no spaces around the colon)")
            if (problem := _key_problem(key)) is not None:
                raise ValueError(f"item {number}: the key {problem}")
            if key in seen:
                raise ValueError(f"item {number} has the same key as item {seen[key]}: give each name its own key")
            seen[key] = number
        return value

    @model_validator(mode="after")
    def _access_token_is_another_key(self) -> Settings:
        if self.access_token is not None:
            token = self.access_token.get_secret_value()
            if (problem := _key_problem(token)) is not None:
                raise ValueError(f"WHISPER_ACCESS_TOKEN {problem}")
            if token in (parse_api_key(item)[1] for item in self.api_keys):
                raise ValueError("WHISPER_ACCESS_TOKEN is the same key as an item of WHISPER_API_KEYS")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'whisper.db').resolve()}"

    @property
    def listens_beyond_loopback(self) -> bool:
        """Whether `host` reaches beyond this machine (a host name other than localhost counts as doing so)."""
        if self.host == "localhost":
            return False
        try:
            return not ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return True

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


SECRET_FIELDS = frozenset({"api_keys", "access_token", "webhook_secret", "llm_api_key", "database_url", "llm_base_url"})
"""Settings whose values (keys, or URLs that may hold a password) are never printed."""


def _field_of(name: str) -> str:
    """The field an error location names: a field name, or an alias such as LANGUAGE."""
    for field, info in Settings.model_fields.items():
        if isinstance(info.validation_alias, AliasChoices) and name in info.validation_alias.choices:
            return field
    return name


def describe_error(exc: Exception) -> str:
    """Turn a settings validation error into lines naming the variables; secret values are never shown."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for err in exc.errors():
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a check across fields: its message names them; its input is every value
            lines.append(message)
            continue
        name, *item = (str(part) for part in err["loc"])
        where = (name if name.isupper() else f"WHISPER_{name.upper()}") + (
            f" item {int(item[0]) + 1}" if item and item[0].isdigit() else ""
        )
        shown = "" if _field_of(name) in SECRET_FIELDS else f" (got {err.get('input')!r})"
        lines.append(f"{where}: {message}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)

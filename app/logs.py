"""Logging: JSON lines (or plain text) with the task and worker each line is about.

Code that works on a task sets `task_id` (and workers `worker_id`) in context variables; every log line written in
that context, in any module and in threads started with asyncio.to_thread, carries them. Lines never hold secrets or
transcript text at INFO level: URLs in every record (uvicorn's access lines and httpx's request lines included) lose
their query-string values and passwords on the way in (`redact_urls`), and API keys in header form (Authorization,
X-API-Key, X-Token) their values (`redact_key_headers`).
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

task_id: ContextVar[str | None] = ContextVar("task_id", default=None)
worker_id: ContextVar[str | None] = ContextVar("worker_id", default=None)
FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
REDACTED = "[redacted]"

# An absolute URL, or a path with a query string (as in an access line); quotes and spaces end either.
_URL = re.compile(r"""[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+|(?<![\w/.:])/[^\s"'<>?]*\?[^\s"'<>]+""")
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/@]*@")
# A header that carries an API key, its separator (`: `, `=`, `': '` in a dict, `", b"` in ASGI's raw list), an
# optional scheme, then the value.
_KEY_HEADER = re.compile(
    r"""\b(authorization|x-api-key|x-token)(["']\s*[:,]\s*b?["']|["']?\s*[:=]\s*(?:b?["'])?)((?:bearer|basic|token)\s+)?"""
    r"""([^\s"',;)}\]]+)""",
    re.IGNORECASE,
)


def _redact_url(url: str) -> str:
    url = _USERINFO.sub(rf"\1:{REDACTED}@", url)
    base, question, rest = url.partition("?")
    if not question:
        return url
    query, hash_mark, fragment = rest.partition("#")
    items = [
        f"{item.partition('=')[0]}={REDACTED}" if "=" in item else REDACTED if item else item
        for item in query.split("&")
    ]
    return f"{base}?{'&'.join(items)}{hash_mark}{fragment}"


def redact_urls(text: str) -> str:
    """`text` with every URL's query values and password replaced (callback tokens, presigned signatures)."""
    if "?" not in text and "@" not in text:
        return text
    return _URL.sub(lambda match: _redact_url(match.group()), text)


def redact_key_headers(text: str) -> str:
    """`text` with the values of Authorization, X-API-Key and X-Token headers replaced (a header line, or a mapping's
    repr), should anything ever log a request's headers."""
    return _KEY_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}", text)


def redact(text: str) -> str:
    """`text` without URL secrets or API keys in headers."""
    return redact_key_headers(redact_urls(text))


def _redact_arg(arg: object) -> object:
    if isinstance(arg, str):
        return redact(arg)
    if arg is None or isinstance(arg, int | float):
        return arg  # kept as is for %d and %f
    text = str(arg)
    redacted = redact(text)
    return arg if redacted == text else redacted  # an httpx.URL or a headers mapping, for example


_make_record = logging.getLogRecordFactory()


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _make_record(*args, **kwargs)
    record.task_id = task_id.get()
    record.worker_id = worker_id.get()
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_arg(arg) for arg in record.args)
    elif isinstance(record.args, dict):
        record.args = {key: _redact_arg(value) for key, value in record.args.items()}
    return record


class _RedactingJson(JsonFormatter):
    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.pop("color_message", None)  # uvicorn's copy of the message with ANSI colour codes, for terminals

    def formatException(self, ei: Any) -> Any:
        text: str | list[str] = super().formatException(ei)
        return redact(text) if isinstance(text, str) else [redact(line) for line in text]

    def formatStack(self, stack_info: str) -> Any:
        text: str | list[str] = super().formatStack(stack_info)
        return redact(text) if isinstance(text, str) else [redact(line) for line in text]


class _RedactingText(logging.Formatter):
    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return redact(super().formatStack(stack_info))


# Every record, whatever handler takes it (also pytest's and uvicorn's), carries the context fields and no secret in
# its URLs or key headers; tracebacks are redacted by the formatters below.
logging.setLogRecordFactory(_record_with_context)


def configure(level: str, fmt: Literal["json", "text"]) -> None:
    """Send logs to stderr as JSON lines or text, with context fields; replaces earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            _RedactingJson(
                f"{FIELDS} %(task_id)s %(worker_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(_RedactingText(f"{FIELDS.replace(' %(message)s', ': %(message)s')}"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's loggers go through this handler too, even where an in-process uvicorn configured them before.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_log = logging.getLogger(name)
        server_log.handlers.clear()
        server_log.propagate, server_log.disabled = True, False

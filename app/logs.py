"""Logging: JSON lines (or plain text) with the task and worker each line is about.

Code that works on a task sets `task_id` (and workers `worker_id`) in context variables; every log line written in
that context, in any module and in threads started with asyncio.to_thread, carries them. Lines never hold secrets or
transcript text at INFO level.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

task_id: ContextVar[str | None] = ContextVar("task_id", default=None)
worker_id: ContextVar[str | None] = ContextVar("worker_id", default=None)
FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


_make_record = logging.getLogRecordFactory()


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    record = _make_record(*args, **kwargs)
    record.task_id = task_id.get()
    record.worker_id = worker_id.get()
    return record


# Every record, whatever handler takes it (also pytest's), carries the context fields.
logging.setLogRecordFactory(_record_with_context)


def configure(level: str, fmt: Literal["json", "text"]) -> None:
    """Send logs to stderr as JSON lines or text, with context fields; replaces earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                f"{FIELDS} %(task_id)s %(worker_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(logging.Formatter(f"{FIELDS.replace(' %(message)s', ': %(message)s')}"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

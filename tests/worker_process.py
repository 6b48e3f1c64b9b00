"""A real worker process with a fast, instrumented engine: `python -m tests.worker_process`.

Settings come from the environment like any worker. The engine sleeps WHISPER_TEST_DELAY seconds per task (in small
steps, honouring stop requests; `LOW-HIGH` for a time drawn per task, the same for every run of it), appends one row per
execution to the `executions` table (no unique constraint), and writes its worker id and execution id into the
transcript (`done by WORKER in EXECUTION`) so a test can tell who completed a task, and in which run. With
WHISPER_TEST_REAL=1 the executions are logged the same way but decoded by the real engine (its transcript unchanged).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from sqlalchemy import Column, Integer, MetaData, String, Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.engine import create_engine, session_factory
from app.db.retry import is_transient
from app.db.types import UTCDateTime
from app.errors import TranscriptionInterrupted
from app.schemas.transcript import Segment, Transcript
from app.settings import get_settings
from workers.engine import EngineInfo, TranscriptionEngine, TranscriptionRequest
from workers.main import build_engine
from workers.worker import Worker

metadata = MetaData()
executions = Table(
    "executions",
    metadata,
    # One row per execution; the id makes the instrument's own retried INSERT idempotent (a killed connection can
    # lose the acknowledgement of a committed row). Nothing is unique per task: duplicates would show.
    Column("execution_id", String(36), primary_key=True),
    Column("task_id", String(36), nullable=False),
    Column("worker_id", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),  # microseconds on every database: runs of one task stay in order
)


class LoggingEngine:
    """Records every execution in the database, then pretends to transcribe (or has `inner` transcribe)."""

    def __init__(
        self, db: AsyncEngine, loop: asyncio.AbstractEventLoop, delay: str, inner: TranscriptionEngine | None = None
    ) -> None:
        self.db = db
        self.loop = loop
        self.inner = inner
        low, _, high = delay.partition("-")
        self.delay = (float(low), float(high or low))
        self.worker_id = ""

    def describe(self) -> EngineInfo:
        if self.inner is not None:
            return self.inner.describe()
        return EngineInfo(device="cpu", device_index=[0], compute_type="fake", models=["fake"])

    def unload_idle(self) -> list[str]:
        return self.inner.unload_idle() if self.inner is not None else []

    def transcribe(
        self,
        audio: np.ndarray,
        request: TranscriptionRequest,
        *,
        on_segment: Callable[[Segment], None],
        should_stop: Callable[[], bool],
    ) -> Transcript:
        execution_id = str(uuid.uuid4())
        asyncio.run_coroutine_threadsafe(self._log(str(request.task_id), execution_id), self.loop).result()
        if self.inner is not None:
            return self.inner.transcribe(audio, request, on_segment=on_segment, should_stop=should_stop)
        seconds = random.Random(str(request.task_id)).uniform(*self.delay)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if should_stop():
                raise TranscriptionInterrupted()
            time.sleep(min(0.05, seconds))
        text = f"done by {self.worker_id} in {execution_id}"
        segment = Segment(id=0, start=0.0, end=0.1, text=text, avg_logprob=-0.1, no_speech_prob=0.0)
        return Transcript(text=text, language="en", language_probability=1.0, duration=0.1, segments=[segment])

    async def _log(self, task_id: str, execution_id: str) -> None:
        row = {"execution_id": execution_id, "task_id": task_id, "worker_id": self.worker_id, "pid": os.getpid()}
        for attempt in range(50):  # the instrument must neither lose nor double a row when connections are killed
            try:
                async with self.db.begin() as conn:
                    await conn.execute(insert(executions).values(**row, at=datetime.now(UTC)))
                return
            except IntegrityError:
                return  # an earlier try committed; only its acknowledgement was lost
            except Exception as exc:
                if not is_transient(exc) or attempt == 49:
                    raise
                await asyncio.sleep(0.05)


async def main() -> None:
    settings = get_settings()
    db = create_engine(settings.resolved_database_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    inner = build_engine(settings) if os.environ.get("WHISPER_TEST_REAL") == "1" else None
    engine = LoggingEngine(db, loop, os.environ.get("WHISPER_TEST_DELAY", "0"), inner)
    worker = Worker(sessions=session_factory(db), engine=engine, settings=settings)
    engine.worker_id = worker.worker_id
    print(f"worker-id {worker.worker_id}", flush=True)
    try:
        await worker.run(stop)
    finally:
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())

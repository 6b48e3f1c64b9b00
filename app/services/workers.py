"""The worker registry: who is running where, with which devices and models, and when each last reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import WorkerRecord
from app.db.retry import retry_transient
from app.db.types import utcnow

STALE_AFTER_INTERVALS = 3
"""A worker that missed this many reports is shown as not alive."""
FORGET_AFTER = timedelta(days=1)
"""Records of workers stopped or silent this long are removed."""


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker reports about itself."""

    id: str
    host: str
    pid: int
    device: str
    device_index: list[int]
    compute_type: str
    concurrency: int


@retry_transient
async def register(*, session: AsyncSession, info: WorkerInfo) -> None:
    """Insert this worker's record (its id is unique per process start) and forget long-gone workers."""
    now = utcnow()
    async with session.begin():
        await session.execute(delete(WorkerRecord).where(WorkerRecord.heartbeat_at < now - FORGET_AFTER))
        session.add(
            WorkerRecord(
                id=info.id,
                host=info.host,
                pid=info.pid,
                device=info.device,
                device_index=info.device_index,
                compute_type=info.compute_type,
                concurrency=info.concurrency,
                models=[],
                running=[],
                started_at=now,
                heartbeat_at=now,
            )
        )


@retry_transient
async def report(*, session: AsyncSession, worker_id: str, running: list[str], models: list[str]) -> None:
    """Refresh the heartbeat, the running task ids and the loaded models."""
    async with session.begin():
        await session.execute(
            update(WorkerRecord)
            .where(WorkerRecord.id == worker_id)
            .values(heartbeat_at=utcnow(), running=running, models=models)
        )


@retry_transient
async def mark_stopped(*, session: AsyncSession, worker_id: str) -> None:
    """Record a clean exit."""
    async with session.begin():
        await session.execute(
            update(WorkerRecord).where(WorkerRecord.id == worker_id).values(stopped_at=utcnow(), running=[])
        )


def is_alive(worker: WorkerRecord, *, reap_seconds: float) -> bool:
    """Reported within the last STALE_AFTER_INTERVALS housekeeping periods and not stopped."""
    fresh_after = utcnow() - timedelta(seconds=reap_seconds * STALE_AFTER_INTERVALS)
    return worker.stopped_at is None and worker.heartbeat_at >= fresh_after


async def list_workers(*, session: AsyncSession) -> list[WorkerRecord]:
    """All known workers, most recently started first."""
    rows = await session.scalars(select(WorkerRecord).order_by(WorkerRecord.started_at.desc()))
    return list(rows)

"""GET /v1/workers: the worker fleet as it reports itself."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import SessionDep, SettingsDep
from app.schemas.workers import WorkerList, WorkerOut
from app.services import workers

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.get(
    "",
    response_model=WorkerList,
    summary="List workers",
    description="Every worker process with its host, pid, devices, loaded models, running tasks and last heartbeat.",
)
async def list_workers(session: SessionDep, settings: SettingsDep) -> WorkerList:
    """Workers, most recently started first."""
    return WorkerList(
        items=[
            WorkerOut(
                id=w.id,
                host=w.host,
                pid=w.pid,
                device=w.device,
                device_index=w.device_index,
                compute_type=w.compute_type,
                concurrency=w.concurrency,
                models=w.models,
                running=w.running,
                started_at=w.started_at,
                heartbeat_at=w.heartbeat_at,
                stopped_at=w.stopped_at,
                alive=workers.is_alive(w, reap_seconds=settings.reap_seconds),
            )
            for w in await workers.list_workers(session=session)
        ]
    )

"""GET /v1/workers: the worker fleet as it reports itself."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import PrincipalDep, SessionDep, SettingsDep
from app.schemas.workers import WorkerList, WorkerOut
from app.services import workers

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.get(
    "",
    response_model=WorkerList,
    summary="List workers",
    description="Every worker process with its host, pid, devices, loaded models, running task count and last "
    "heartbeat; the ids of running tasks (any tenant's) are shown to admin keys only.",
)
async def list_workers(session: SessionDep, settings: SettingsDep, principal: PrincipalDep) -> WorkerList:
    """Workers, most recently started first."""
    return WorkerList(
        items=[
            WorkerOut.from_record(
                w, alive=workers.is_alive(w, reap_seconds=settings.reap_seconds), show_tasks=principal.admin
            )
            for w in await workers.list_workers(session=session)
        ]
    )

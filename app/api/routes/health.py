"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.deps import SettingsDep
from app.services import metrics
from app.services.health import readiness

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The process is alive."""

    status: str = "ok"


class Readiness(BaseModel):
    """Whether this node can serve: database reachable and schema current."""

    status: Literal["ready", "unavailable"] = Field(examples=["ready"])
    database: str = Field(description="`ok`, or why the database cannot be used.", examples=["ok"])
    schema_version: str | None = Field(description="The database's Alembic revision.", examples=["0006"])
    expected_schema: str = Field(description="The revision this code needs.", examples=["0006"])


@router.get(
    "/health",
    response_model=Health,
    tags=["distributed"],
    summary="Liveness",
    description="200 while the process runs; no key needed. Also the distributed Whisper service's health check.",
)
async def health() -> Health:
    """Always ok while the process serves requests."""
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness",
    description="200 when the database answers (within 5 s) and its schema is at the revision this code needs; "
    "503 otherwise, saying why. Workers check the same and that their model loads with `whisper-service check`.",
    responses={503: {"model": Readiness, "description": "Not ready."}},
)
async def ready(request: Request, response: Response) -> Readiness:
    """Database reachable and schema at head."""
    state = await readiness(request.app.state.sessions)
    if not state.ready:
        response.status_code = 503
    return Readiness(
        status="ready" if state.ready else "unavailable",
        database=state.database,
        schema_version=state.schema_version,
        expected_schema=state.expected_schema,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Tasks by status and priority, queue depth and oldest age, task duration and real-time-factor "
    "histograms, audio seconds processed, worker heartbeats, webhook attempts by outcome (all cluster-wide, from "
    "the database), and this node's HTTP latency. No key needed: expose it only to your monitoring network.",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def prometheus_metrics(request: Request, settings: SettingsDep) -> Response:
    """The exposition text."""
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        body = await metrics.render(session, reap_seconds=settings.reap_seconds)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

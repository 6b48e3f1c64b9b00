"""Readiness: whether this node can serve (database reachable, schema at the revision this code needs)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.migrate import schema_head

READY_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class ReadinessState:
    """The answer and, when not ready, why."""

    ready: bool
    database: str
    schema_version: str | None
    expected_schema: str


async def readiness(sessions: async_sessionmaker[AsyncSession]) -> ReadinessState:
    """Ask the database for its schema revision (within 5 s) and compare it with this code's."""
    expected = schema_head()
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS), sessions() as session:
            version = await session.scalar(text("SELECT version_num FROM alembic_version"))
    except Exception as exc:  # any failure means not ready; say which
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {str(exc)[:200]}"
        return ReadinessState(False, reason, None, expected)
    if version != expected:
        reason = f"schema at {version}, expected {expected}: run `whisper-service migrate`"
        return ReadinessState(False, reason, version, expected)
    return ReadinessState(True, "ok", version, expected)

"""Liveness."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The process is alive."""

    status: str = "ok"


@router.get("/health", response_model=Health, summary="Liveness", description="200 while the process runs.")
async def health() -> Health:
    """Always ok while the process serves requests."""
    return Health()

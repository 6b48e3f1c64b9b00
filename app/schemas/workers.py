"""Worker listing."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from app.db.models import WorkerRecord


class WorkerOut(BaseModel):
    """A worker process and its latest report."""

    id: str = Field(description="host:pid:random, unique per process start.", examples=["gpu-node-1:4242:9f1c2a3b"])
    host: str = Field(description="Host name.", examples=["gpu-node-1"])
    pid: int = Field(description="Process id on that host.", examples=[4242])
    device: str = Field(description="cpu or cuda.", examples=["cuda"])
    device_index: list[int] = Field(description="GPU indexes a model is spread over.", examples=[[0, 1]])
    compute_type: str = Field(description="CTranslate2 compute type.", examples=["float16"])
    concurrency: int = Field(description="Tasks it runs at once.", examples=[2])
    models: list[str] = Field(description="Models loaded now.", examples=[["base"]])
    running: list[str] | None = Field(
        description="Ids of the tasks it is running: shown to admin keys only (tasks of every tenant), null for others."
    )
    running_count: int = Field(description="How many tasks it is running.", examples=[1])
    started_at: datetime
    heartbeat_at: datetime = Field(description="Last report.")
    stopped_at: datetime | None = Field(description="When it exited cleanly, if it did.")
    alive: bool = Field(description="Reported within the last three housekeeping periods and not stopped.")

    @classmethod
    def from_record(cls, record: WorkerRecord, *, alive: bool, show_tasks: bool) -> WorkerOut:
        """The record as a caller may see it: task ids (any tenant's) only when `show_tasks`."""
        derived = ("running", "running_count", "alive")
        fields: dict[str, Any] = {name: getattr(record, name) for name in cls.model_fields if name not in derived}
        fields |= {"alive": alive, "running": list(record.running) if show_tasks else None}
        return cls(**fields, running_count=len(record.running))


class WorkerList(BaseModel):
    """Every known worker (records are forgotten a day after the last report)."""

    items: list[WorkerOut]

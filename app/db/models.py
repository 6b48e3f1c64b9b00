"""ORM models: tasks, their media chunks and their results."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    event,
    insert,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column

from app.db.types import Blob, LongJSON, LongText, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# On MySQL/MariaDB every table is utf8mb4 with binary collation: transcripts hold any script, and ids and
# idempotency keys compare exactly.
MYSQL_TABLE = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


class Base(DeclarativeBase):
    """Declarative base with deterministic constraint names (same on every database)."""

    metadata = MetaData(naming_convention=NAMING)


class Task(Base):
    """One transcription job and its lifecycle."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # A cluster-wide integer, in order of creation and never reused (from `task_numbers`), for clients that want
    # integer task ids (the evl API); assigned on insert (see `_number_task`).
    number: Mapped[int] = mapped_column(BigInteger)
    # The API key name that created the task; "" when the server runs without keys.
    owner: Mapped[str] = mapped_column(String(64), default="")
    task_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(SmallInteger)
    model: Mapped[str] = mapped_column(String(255))
    language: Mapped[str | None] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(LongJSON)
    source: Mapped[str] = mapped_column(String(16))
    source_url: Mapped[str | None] = mapped_column(LongText)
    source_meta: Mapped[dict[str, Any] | None] = mapped_column(LongJSON)
    filename: Mapped[str | None] = mapped_column(String(255))
    media_duration: Mapped[float | None] = mapped_column(Double)
    media_bytes: Mapped[int | None] = mapped_column(Integer)
    progress: Mapped[int] = mapped_column(SmallInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    # SHA-256 of the decoded sound and every option that shapes the result (known once the media is); a completed
    # task with the same owner and hash is reused instead of transcribing again.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    reused_from: Mapped[str | None] = mapped_column(String(36))
    callback_url: Mapped[str | None] = mapped_column(LongText)
    # A per-task `whsec_` signing secret; never returned by the API.
    callback_secret: Mapped[str | None] = mapped_column(String(255))
    # What the callback body holds (app/services/callback_bodies.py): null or "event", "full", "evl".
    callback_payload: Mapped[str | None] = mapped_column(String(16))
    # What a client of a compatibility API sent that the task model does not hold (its labels and option echo).
    compat_meta: Mapped[dict[str, Any] | None] = mapped_column(LongJSON)
    error_type: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    processing_seconds: Mapped[float | None] = mapped_column(Double)
    # How long the task is kept once it finishes, decided at creation: its own `delete_after_seconds`, else the
    # server's retention then; null: until deleted. `delete_at` is set from it when the task finishes.
    delete_after_seconds: Mapped[int | None] = mapped_column(Integer)
    delete_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # The claim query: WHERE status='queued' AND run_at <= now ORDER BY priority, run_at, id.
        Index("ix_tasks_claim", "status", "priority", "run_at", "id"),
        # Listing newest first, per owner.
        Index("ix_tasks_owner_created", "owner", "created_at", "id"),
        Index("ix_tasks_created", "created_at", "id"),
        # The reaper: running tasks whose lease expired.
        Index("ix_tasks_lease", "status", "lease_expires_at"),
        Index("ix_tasks_owner_content", "owner", "content_hash"),
        # Event streams: what finished since the previous poll, per owner or for an admin.
        Index("ix_tasks_owner_finished", "owner", "finished_at"),
        Index("ix_tasks_finished", "finished_at"),  # set once at creation: no cost on status changes
        # Retention: tasks due for deletion (delete_at <= now), and finished ones with no deletion time yet
        # (delete_at IS NULL AND finished_at <= now), each a range of this index.
        Index("ix_tasks_delete_at", "delete_at", "finished_at"),
        UniqueConstraint("owner", "idempotency_key", name="uq_tasks_owner_idempotency_key"),
        Index("ix_tasks_number", "number", unique=True),
        MYSQL_TABLE,
    )


class TaskNumber(Base):
    """Hands out task numbers: the database's auto-increment, one row per task, so a number is given once, in order,
    across every API node. A deleted task's row goes with it (retention would otherwise grow this table without
    end): the counter never goes back (SQLite's AUTOINCREMENT, PostgreSQL's sequence, and InnoDB's counter, which
    MySQL 8 and MariaDB 10.2.4+ keep across restarts), so no number is given twice."""

    __tablename__ = "task_numbers"

    number: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    task_id: Mapped[str] = mapped_column(String(36))

    __table_args__ = (
        UniqueConstraint("task_id", name="uq_task_numbers_task_id"),
        {"sqlite_autoincrement": True, **MYSQL_TABLE},
    )


class MediaChunk(Base):
    """A piece of a task's decoded audio (16 kHz mono Opus in Ogg), so any worker host can read it."""

    __tablename__ = "media_chunks"
    __table_args__ = MYSQL_TABLE

    task_id: Mapped[str] = mapped_column(String(36), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(Blob)


class TaskResult(Base):
    """The transcript of a completed task."""

    __tablename__ = "task_results"
    __table_args__ = MYSQL_TABLE

    task_id: Mapped[str] = mapped_column(String(36), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    text: Mapped[str] = mapped_column(LongText)
    language: Mapped[str | None] = mapped_column(String(16))
    language_probability: Mapped[float | None] = mapped_column(Double)
    duration: Mapped[float] = mapped_column(Double)
    segments: Mapped[list[dict[str, Any]]] = mapped_column(LongJSON)


class TaskPartial(Base):
    """A segment of a running task, written as it is transcribed (for streaming); removed when the task ends."""

    __tablename__ = "task_partials"
    __table_args__ = MYSQL_TABLE

    task_id: Mapped[str] = mapped_column(String(36), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment: Mapped[dict[str, Any]] = mapped_column(LongJSON)


class WebhookEvent(Base):
    """An outbox row: written in the same transaction as the status change it announces."""

    __tablename__ = "webhook_outbox"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(36), ForeignKey("tasks.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(LongText)
    payload: Mapped[dict[str, Any]] = mapped_column(LongJSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_webhook_outbox_due", "status", "next_attempt_at"),
        Index("ix_webhook_outbox_task", "task_id"),
        MYSQL_TABLE,
    )


class TaskDeletion(Base):
    """A deleted task, kept briefly so event streams can announce the deletion of tasks they were not following."""

    __tablename__ = "task_deletions"

    task_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), default="")
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_task_deletions_owner", "owner", "deleted_at"),
        Index("ix_task_deletions_at", "deleted_at"),
        MYSQL_TABLE,
    )


class WebhookAttempt(Base):
    """One delivery attempt of a webhook event."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), ForeignKey("webhook_outbox.id", ondelete="CASCADE"))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Double)
    error: Mapped[str | None] = mapped_column(LongText)
    response_excerpt: Mapped[str | None] = mapped_column(LongText)

    __table_args__ = (Index("ix_webhook_attempts_event", "event_id", "attempt"), MYSQL_TABLE)


class Summary(Base):
    """An LLM summary of a completed task's transcript."""

    __tablename__ = "task_summaries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(36), ForeignKey("tasks.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(255))
    prompt: Mapped[str | None] = mapped_column(LongText)
    output_language: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(LongText)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    llm_calls: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(LongText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_task_summaries_task", "task_id", "created_at"), MYSQL_TABLE)


class WorkerRecord(Base):
    """A worker process as it reports itself; refreshed while it runs."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(16))
    device_index: Mapped[list[int]] = mapped_column(LongJSON)
    compute_type: Mapped[str] = mapped_column(String(32))
    concurrency: Mapped[int] = mapped_column(Integer)
    models: Mapped[list[str]] = mapped_column(LongJSON)
    running: Mapped[list[str]] = mapped_column(LongJSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_workers_heartbeat", "heartbeat_at"), MYSQL_TABLE)


class ApiKey(Base):
    """An API key made with `whisper-service keys create`; only its SHA-256 is kept, never the key."""

    __tablename__ = "api_keys"

    # The key's name is its tenant: the `owner` of the tasks it creates.
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("key_hash", name="uq_api_keys_key_hash"), MYSQL_TABLE)


class ClusterSetting(Base):
    """A value the cluster decides once, in the database: the generated webhook signing secret, and the mark that
    the first admin key was made."""

    __tablename__ = "cluster_settings"
    __table_args__ = MYSQL_TABLE

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Chore(Base):
    """Cluster-wide work that one worker at a time does (deleting tasks past their retention): who holds it, until
    when (a holder that dies loses it then), and how many items it has done in all."""

    __tablename__ = "chores"
    __table_args__ = MYSQL_TABLE

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done: Mapped[int] = mapped_column(BigInteger, default=0)


# Core tables, for statements that need no ORM bookkeeping (the queue's fenced updates, bulk deletes).
TASKS = cast(Table, Task.__table__)
MEDIA_CHUNKS = cast(Table, MediaChunk.__table__)
TASK_RESULTS = cast(Table, TaskResult.__table__)
TASK_PARTIALS = cast(Table, TaskPartial.__table__)
WEBHOOK_OUTBOX = cast(Table, WebhookEvent.__table__)
WEBHOOK_ATTEMPTS = cast(Table, WebhookAttempt.__table__)
API_KEYS = cast(Table, ApiKey.__table__)
CLUSTER_SETTINGS = cast(Table, ClusterSetting.__table__)
CHORES = cast(Table, Chore.__table__)
TASK_DELETIONS = cast(Table, TaskDeletion.__table__)

TASK_NUMBERS = cast(Table, TaskNumber.__table__)


def take_numbers(connection: Connection, task_ids: list[str]) -> dict[str, int]:
    """The next numbers, one per new task id, in order, within the caller's transaction (so a rolled-back insert
    leaves only a gap, never a duplicate). Inserts through the ORM get theirs by themselves (`_number_task`); a bulk
    insert of the tasks table gives its rows these."""
    if len(task_ids) == 1:
        inserted = connection.execute(insert(TASK_NUMBERS).values(task_id=task_ids[0])).inserted_primary_key
        assert inserted is not None
        return {task_ids[0]: int(inserted[0])}
    connection.execute(insert(TASK_NUMBERS), [{"task_id": task_id} for task_id in task_ids])
    rows = connection.execute(
        select(TASK_NUMBERS.c.task_id, TASK_NUMBERS.c.number).where(TASK_NUMBERS.c.task_id.in_(task_ids))
    )
    return {task_id: int(number) for task_id, number in rows}


@event.listens_for(Task, "before_insert")
def _number_task(_mapper: Mapper[Task], connection: Connection, task: Task) -> None:
    """Give a task the ORM inserts the next number."""
    if task.number is None:
        task.number = take_numbers(connection, [task.id])[task.id]

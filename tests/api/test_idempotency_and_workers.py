"""Idempotent create, the worker registry and the webhook outbox, on SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Task, WebhookEvent
from tests.api.test_task_lifecycle import upload, wait_status
from tests.audio import clip
from tests.conftest import wait_for
from tests.fakes import FakeEngine
from workers.worker import Worker

Sessions = async_sessionmaker[AsyncSession]
StartWorker = Callable[..., Awaitable[Any]]


async def post_with_key(client: httpx.AsyncClient, key: str, **data: str) -> httpx.Response:
    return await client.post(
        "/v1/tasks",
        files={"file": ("jfk.wav", clip("jfk.wav").read_bytes())},
        data=data,
        headers={"Idempotency-Key": key},
    )


async def count(sessions: Sessions, model: type[Any]) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_a_repeated_request_returns_the_first_task(client: httpx.AsyncClient, sessions: Sessions) -> None:
    first = await post_with_key(client, "key-1", language="en")
    again = await post_with_key(client, "key-1", language="en")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = await post_with_key(client, "key-2", language="en")
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert await count(sessions, Task) == 2


async def test_concurrent_identical_posts_create_one_task(client: httpx.AsyncClient, sessions: Sessions) -> None:
    responses = await asyncio.gather(*(post_with_key(client, "same-key", priority="high") for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count(sessions, Task) == 1


async def test_the_same_key_with_another_request_is_refused(client: httpx.AsyncClient, sessions: Sessions) -> None:
    assert (await post_with_key(client, "k", language="en")).status_code == 201
    response = await post_with_key(client, "k", language="fr")
    assert response.status_code == 422 and response.json()["type"].endswith("IdempotencyKeyReused")
    assert await count(sessions, Task) == 1


async def test_workers_are_listed_with_their_identity(
    client: httpx.AsyncClient, run_worker: StartWorker, settings: Any
) -> None:
    engine = FakeEngine(delay_per_segment=0.2)
    worker = await run_worker(engine, reap_seconds=0.2, worker_concurrency=2)
    created = await upload(client, "en_sonnet001.wav")

    async def listed_running() -> dict[str, Any] | None:
        items = (await client.get("/v1/workers")).json()["items"]
        mine = [w for w in items if w["id"] == worker.worker_id]
        return mine[0] if mine and mine[0]["running"] == [created["id"]] else None

    record = await wait_for(listed_running, timeout=20)
    assert record["alive"] and record["stopped_at"] is None
    assert record["pid"] > 0 and record["host"] and record["id"].startswith(f"{record['host']}:{record['pid']}:")
    assert (record["device"], record["device_index"], record["compute_type"]) == ("cpu", [0], "fake")
    assert record["concurrency"] == 2 and record["models"] == ["fake"]
    await wait_status(client, created["id"], "completed")


async def test_stopped_workers_are_shown_as_stopped(
    client: httpx.AsyncClient, sessions: Sessions, settings: Any
) -> None:
    worker = Worker(sessions=sessions, engine=FakeEngine(), settings=settings)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await wait_for(lambda: _listed(client, worker.worker_id), timeout=10)
    stop.set()
    await running
    record = await _listed(client, worker.worker_id)
    assert record is not None and record["stopped_at"] is not None and record["alive"] is False


async def _listed(client: httpx.AsyncClient, worker_id: str) -> dict[str, Any] | None:
    items = (await client.get("/v1/workers")).json()["items"]
    return next((w for w in items if w["id"] == worker_id), None)


async def test_each_outcome_writes_one_outbox_event(
    client: httpx.AsyncClient, sessions: Sessions, run_worker: StartWorker
) -> None:
    hook = {"callback_url": "https://hooks.example.com/whisper"}
    completed = await upload(client, **hook)
    plain = await upload(client)  # no callback_url: no event
    cancelled = await upload(client, **hook)
    assert (await client.post(f"/v1/tasks/{cancelled['id']}/cancel")).status_code == 200
    await run_worker(FakeEngine())
    await wait_status(client, completed["id"], "completed")
    await wait_status(client, plain["id"], "completed")
    async with sessions() as session:
        events = {(e.task_id, e.event) for e in await session.scalars(select(WebhookEvent))}
        payload = (
            await session.scalars(select(WebhookEvent.payload).where(WebhookEvent.task_id == completed["id"]))
        ).one()
    assert events == {(completed["id"], "task.completed"), (cancelled["id"], "task.cancelled")}
    assert payload["data"] == {
        "task_id": completed["id"],
        "status": "completed",
        "text": "segment 0. segment 1. segment 2. segment 3. segment 4. segment 5.",
    }

"""Event streams: constant cost per poll however long they are open, and a per-key cap (issue 12, item 22)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import Task
from app.db.types import utcnow
from app.services.events import TaskWatch
from app.services.tasks import delete_task
from app.settings import Settings
from tests.api.test_openai_compat import serve
from tests.conftest import wait_for

Sessions = async_sessionmaker[AsyncSession]
TaskFactory = Callable[..., Awaitable[Task]]
ALICE = {"Authorization": "Bearer alice-secret-1"}
BOB = {"Authorization": "Bearer bob-secret-11"}
KEYS = ["alice:alice-secret-1", "bob:bob-secret-11"]


async def test_a_poll_reads_only_what_changed_since_the_previous_one(
    sessions: Sessions, task_factory: TaskFactory
) -> None:
    watch = TaskWatch(owner="alice")
    start = utcnow()
    for _ in range(3):
        await task_factory(sessions, owner="alice")  # stays queued
    for _ in range(150):
        await task_factory(sessions, owner="alice", status="completed", progress=100, finished_at=utcnow())
    await task_factory(sessions, owner="bob", status="completed", finished_at=utcnow())
    async with sessions() as session:
        first = await watch.poll(session, now=start + timedelta(seconds=1))
        assert (len(first.tasks), first.rows_read) == (153, 153)  # everything is new
        # Polls after the look-back window read only the unfinished tasks, however many finished meanwhile.
        reads = [(await watch.poll(session, now=start + timedelta(hours=h))).rows_read for h in range(1, 6)]
    assert reads[1:] == [3, 3, 3, 3], reads
    assert len(watch.sent) == 3  # nor does the stream's memory grow


async def test_a_task_finished_and_deleted_between_polls_is_reported(
    sessions: Sessions, task_factory: TaskFactory
) -> None:
    watch = TaskWatch(owner=None)
    task = await task_factory(sessions)
    async with sessions() as session:
        assert [t.id for t in (await watch.poll(session)).tasks] == [task.id]
    # Finished with a time stamp older than the window (a late commit, another node's clock): still reported.
    async with sessions() as session:
        row = await session.get(Task, task.id)
        assert row is not None
        row.status, row.finished_at = "completed", utcnow() - timedelta(hours=1)
        await session.commit()
        changes = await watch.poll(session)
        assert [(t.id, t.status) for t in changes.tasks] == [(task.id, "completed")] and not changes.deleted
    other = await task_factory(sessions)
    async with sessions() as session:
        await watch.poll(session)
        await session.delete(await session.get(Task, other.id))
        await session.commit()
        assert (await watch.poll(session)).deleted == [other.id]


async def test_deleting_a_long_finished_task_is_announced_to_its_owner_only(
    sessions: Sessions, task_factory: TaskFactory
) -> None:
    """A task that finished long before the stream opened is not followed, yet its deletion reaches the stream."""
    mine, theirs = TaskWatch(owner="alice"), TaskWatch(owner="bob")
    task = await task_factory(sessions, owner="alice")
    async with sessions() as session:
        row = await session.get(Task, task.id)
        assert row is not None
        row.status, row.finished_at = "completed", utcnow() - timedelta(hours=1)
        await session.commit()
        assert not (await mine.poll(session)).tasks and not (await theirs.poll(session)).tasks
        await delete_task(session=session, task_id=task.id, owner="alice")
        assert (await mine.poll(session)).deleted == [task.id]
        assert (await mine.poll(session)).deleted == []  # once
        assert (await theirs.poll(session)).deleted == []


async def test_open_streams_are_capped_per_key_and_freed_on_disconnect(
    make_settings: Callable[..., Settings], sessions: Sessions
) -> None:
    with serve(make_settings(api_keys=KEYS, max_event_streams=2)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            first = await http.send(http.build_request("GET", "/v1/tasks/events", headers=ALICE), stream=True)
            second = await http.send(http.build_request("GET", "/v1/tasks/events", headers=ALICE), stream=True)
            assert (first.status_code, second.status_code) == (200, 200)
            third = await http.send(http.build_request("GET", "/v1/tasks/events", headers=ALICE), stream=True)
            await third.aclose() if third.status_code == 200 else await third.aread()
            assert third.status_code == 429, third.status_code
            assert "2 event streams open" in third.json()["detail"] and third.headers["Retry-After"]
            # Another key has slots of its own.
            bobs = await http.send(http.build_request("GET", "/v1/tasks/events", headers=BOB), stream=True)
            assert bobs.status_code == 200
            await bobs.aclose()
            await first.aclose()  # the client goes away: its slot is freed once the server notices

            async def reopened() -> bool:
                response = await http.send(http.build_request("GET", "/v1/tasks/events", headers=ALICE), stream=True)
                if response.status_code == 200:
                    await response.aclose()
                    return True
                await response.aread()
                return False

            assert await wait_for(reopened, timeout=30)
            await second.aclose()


async def test_a_stream_announces_progress_and_deletion(
    make_settings: Callable[..., Settings], sessions: Sessions, task_factory: TaskFactory
) -> None:
    with serve(make_settings(api_keys=KEYS)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            created = await http.post("/v1/tasks", json={"file_url": "https://example.com/a.mp3"}, headers=ALICE)
            task_id = created.json()["id"]
            async with http.stream("GET", "/v1/tasks/events", headers=ALICE) as response:
                seen: list[tuple[str, Any]] = []
                name = "message"
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data = json.loads(line[5:])
                        seen.append((name, data.get("status")))
                        if name == "task" and data["status"] == "queued":
                            async with sessions() as session:
                                row = await session.get(Task, task_id)
                                assert row is not None
                                row.status, row.progress, row.finished_at = "completed", 100, utcnow()
                                await session.commit()
                        elif name == "task" and data["status"] == "completed":
                            assert (await http.delete(f"/v1/tasks/{task_id}", headers=ALICE)).status_code == 204
                        elif name == "deleted":
                            assert data == {"id": task_id}
                            break
            assert seen == [("task", "queued"), ("task", "completed"), ("deleted", None)]

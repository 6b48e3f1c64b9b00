"""Reading, listing, cancelling and deleting tasks; results and subtitles, with a fast engine in a real worker."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import create_engine, session_factory
from app.db.models import MediaChunk, Task, TaskResult
from app.errors import UnreadableMedia
from app.settings import Settings
from tests.audio import clip
from tests.conftest import wait_for
from tests.fakes import FakeEngine, StallingEngine
from workers.worker import Worker

Sessions = async_sessionmaker[AsyncSession]
StartWorker = Callable[..., Awaitable[Any]]


async def upload(client: httpx.AsyncClient, name: str = "jfk.wav", **data: str) -> dict[str, Any]:
    with clip(name).open("rb") as f:
        response = await client.post("/v1/tasks", files={"file": (name, f)}, data=data)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def wait_status(client: httpx.AsyncClient, task_id: str, *statuses: str, timeout: float = 30) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        body: dict[str, Any] = (await client.get(f"/v1/tasks/{task_id}")).json()
        return body if body["status"] in statuses else None

    result: dict[str, Any] = await wait_for(check, timeout=timeout)
    return result


async def test_worker_completes_a_task_and_exports_subtitles(
    client: httpx.AsyncClient, run_worker: StartWorker
) -> None:
    created = await upload(client, language="en")
    await run_worker(FakeEngine(segment_seconds=4.0))
    done = await wait_status(client, created["id"], "completed")
    assert done["progress"] == 100 and done["attempts"] == 1 and done["error"] is None
    assert done["started_at"] >= done["created_at"] and done["finished_at"] >= done["started_at"]
    assert done["processing_seconds"] > 0
    assert done["result"]["text"] == "segment 0. segment 1. segment 2."
    assert [s["end"] for s in done["result"]["segments"]] == [4.0, 8.0, 11.0]

    result = await client.get(f"/v1/tasks/{created['id']}/result")
    assert result.status_code == 200 and result.json() == done["result"]

    srt = await client.get(f"/v1/tasks/{created['id']}/subtitles", params={"format": "srt"})
    assert srt.status_code == 200 and srt.headers["content-type"].startswith("application/x-subrip")
    assert srt.headers["content-disposition"] == 'attachment; filename="jfk.srt"'
    assert srt.text == (
        "1\n00:00:00,000 --> 00:00:04,000\nsegment 0.\n\n"
        "2\n00:00:04,000 --> 00:00:08,000\nsegment 1.\n\n"
        "3\n00:00:08,000 --> 00:00:11,000\nsegment 2.\n"
    )
    vtt = await client.get(f"/v1/tasks/{created['id']}/subtitles", params={"format": "vtt"})
    assert vtt.text.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:04.000\nsegment 0.\n")
    for fmt, media_type in (("txt", "text/plain"), ("tsv", "text/tab-separated-values"), ("json", "application/json")):
        response = await client.get(f"/v1/tasks/{created['id']}/subtitles", params={"format": fmt})
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type)
    bad = await client.get(f"/v1/tasks/{created['id']}/subtitles", params={"format": "docx"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "format"
    lrc = await client.get(
        f"/v1/tasks/{created['id']}/subtitles", params={"format": "lrc", "max_line_width": 7, "max_cue_duration": 2}
    )
    assert lrc.status_code == 200 and lrc.text.startswith(
        "[00:00.00]segment\n[00:02.00]\n[00:03.11]0.\n[00:04.00]segment\n"
    )
    too_narrow = await client.get(f"/v1/tasks/{created['id']}/subtitles", params={"max_line_width": 2})
    assert too_narrow.status_code == 422 and too_narrow.json()["errors"][0]["field"] == "max_line_width"


async def test_media_is_removed_once_the_task_completes(
    client: httpx.AsyncClient, sessions: Sessions, run_worker: StartWorker
) -> None:
    created = await upload(client)
    await run_worker(FakeEngine())
    await wait_status(client, created["id"], "completed")
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(MediaChunk)) == 0


async def test_high_priority_queued_after_low_runs_first(client: httpx.AsyncClient, run_worker: StartWorker) -> None:
    low = await upload(client, priority="low")
    normal = await upload(client, priority="normal")
    high = await upload(client, priority="high")
    await run_worker(FakeEngine(), worker_concurrency=1)
    finished = [await wait_status(client, t["id"], "completed") for t in (low, normal, high)]
    by_start = sorted(finished, key=lambda t: t["started_at"])
    assert [t["id"] for t in by_start] == [high["id"], normal["id"], low["id"]]


async def test_engine_failure_is_stored_on_the_task(client: httpx.AsyncClient, run_worker: StartWorker) -> None:
    created = await upload(client)
    await run_worker(FakeEngine(fail_with=UnreadableMedia("the model could not read it")))
    failed = await wait_status(client, created["id"], "failed")
    assert failed["error"] == {"type": "UnreadableMedia", "message": "the model could not read it"}
    result = await client.get(f"/v1/tasks/{created['id']}/result")
    assert result.status_code == 409 and "failed" in result.json()["detail"]


async def test_unexpected_engine_error_is_stored_too(client: httpx.AsyncClient, run_worker: StartWorker) -> None:
    created = await upload(client)
    await run_worker(FakeEngine(fail_with=RuntimeError("CUDA out of memory")))
    failed = await wait_status(client, created["id"], "failed")
    assert failed["error"] == {"type": "RuntimeError", "message": "CUDA out of memory"}


async def test_progress_is_reported_while_running(client: httpx.AsyncClient, run_worker: StartWorker) -> None:
    created = await upload(client, "en_sonnet001.wav")  # 53 s: 27 segments of 2 s, 0.1 s each
    await run_worker(FakeEngine(delay_per_segment=0.1))

    async def mid_progress() -> int | None:
        body = (await client.get(f"/v1/tasks/{created['id']}")).json()
        return body["progress"] if body["status"] == "running" and 0 < body["progress"] < 100 else None

    assert 0 < await wait_for(mid_progress, timeout=20, interval=0.05) < 100
    await wait_status(client, created["id"], "completed")


async def test_cancel_queued_and_running(
    client: httpx.AsyncClient, sessions: Sessions, run_worker: StartWorker
) -> None:
    queued = await upload(client)
    response = await client.post(f"/v1/tasks/{queued['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None
    again = await client.post(f"/v1/tasks/{queued['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]

    running = await upload(client, "en_sonnet001.wav")
    engine = FakeEngine(delay_per_segment=0.3)
    await run_worker(engine)
    await wait_status(client, running["id"], "running")
    assert (await client.post(f"/v1/tasks/{running['id']}/cancel")).status_code == 200
    cancelled = await wait_status(client, running["id"], "cancelled", timeout=10)
    assert cancelled["result"] is None and cancelled["progress"] < 100
    assert engine.calls == [("base", pytest.approx(53.27, abs=0.05))]  # the queued-then-cancelled one never ran
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(MediaChunk)) == 0


async def test_cancel_reaches_a_running_task_between_heartbeats(
    client: httpx.AsyncClient, run_worker: StartWorker
) -> None:
    """No segment and no heartbeat for minutes (one long batch): the worker's per-second check still sees the cancel
    and stops the engine, instead of waiting for the batch to end."""
    created = await upload(client)
    engine = StallingEngine(give_up_seconds=120)
    await run_worker(engine, heartbeat_seconds=150, lease_seconds=300)
    await wait_status(client, created["id"], "running")
    assert (await client.post(f"/v1/tasks/{created['id']}/cancel")).json()["status"] == "running"
    cancelled = await wait_status(client, created["id"], "cancelled", "completed", timeout=150)
    assert engine.stopped.is_set(), "the engine ran until it gave up: the cancel was not passed on"
    assert cancelled["status"] == "cancelled" and cancelled["result"] is None


async def test_delete_removes_task_media_and_result(
    client: httpx.AsyncClient, sessions: Sessions, run_worker: StartWorker
) -> None:
    created = await upload(client)
    await run_worker(FakeEngine())
    await wait_status(client, created["id"], "completed")
    assert (await client.delete(f"/v1/tasks/{created['id']}")).status_code == 204
    assert (await client.get(f"/v1/tasks/{created['id']}")).status_code == 404
    assert (await client.delete(f"/v1/tasks/{created['id']}")).status_code == 404
    queued = await upload(client)
    assert (await client.delete(f"/v1/tasks/{queued['id']}")).status_code == 204
    async with sessions() as session:
        for model in (Task, MediaChunk, TaskResult):
            assert await session.scalar(select(func.count()).select_from(model)) == 0


async def test_deleting_a_running_task_stops_it(
    client: httpx.AsyncClient, sessions: Sessions, run_worker: StartWorker
) -> None:
    created = await upload(client, "en_sonnet001.wav")
    await run_worker(FakeEngine(delay_per_segment=0.3))
    await wait_status(client, created["id"], "running")
    assert (await client.delete(f"/v1/tasks/{created['id']}")).status_code == 204

    async def nothing_left() -> bool:
        async with sessions() as session:
            counts = [await session.scalar(select(func.count()).select_from(m)) for m in (Task, TaskResult)]
        return counts == [0, 0]

    await wait_for(nothing_left, timeout=10)


async def test_deleting_a_running_task_is_logged_as_a_deletion_not_a_fault(
    client: httpx.AsyncClient, run_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    """A user deleting their running task is normal: INFO saying so, no WARNING about a lost lease."""
    caplog.set_level(logging.INFO)
    created = await upload(client)
    engine = StallingEngine(give_up_seconds=120)
    await run_worker(engine, heartbeat_seconds=150, lease_seconds=300)
    await wait_for(lambda: asyncio.sleep(0, engine.started.is_set()), timeout=30)  # decoding, not loading media
    assert (await client.delete(f"/v1/tasks/{created['id']}")).status_code == 204

    def stop_line() -> logging.LogRecord | None:
        lines = [r for r in caplog.records if r.name == "workers.worker" and ": stopped" in r.getMessage()]
        return lines[0] if lines else None

    async def stopped() -> logging.LogRecord | None:
        return stop_line()

    line = await wait_for(stopped, timeout=150)
    assert engine.stopped.is_set()
    assert "the task was deleted" in line.getMessage() and line.levelno == logging.INFO, line.getMessage()
    assert getattr(line, "task_id", None) == created["id"]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


class MediaGoneEngine(FakeEngine):
    """Reads media until the test deletes the task, then fails as a read of vanished media does."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted = threading.Event()

    def transcribe(self, audio: Any, request: Any, **kwargs: Any) -> Any:
        self.started.set()
        self.deleted.wait(60)
        raise UnreadableMedia("the media was removed while it was read")


async def test_a_task_deleted_while_its_media_is_read_is_logged_as_a_deletion(
    client: httpx.AsyncClient, run_worker: StartWorker, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleting a task removes its media: a worker still reading it fails, and that is the owner's action, not a
    fault (INFO, no WARNING, no error recorded anywhere)."""
    caplog.set_level(logging.INFO)
    created = await upload(client)
    engine = MediaGoneEngine()
    await run_worker(engine, heartbeat_seconds=150, lease_seconds=300)
    await wait_for(lambda: asyncio.sleep(0, engine.started.is_set()), timeout=30)
    assert (await client.delete(f"/v1/tasks/{created['id']}")).status_code == 204
    engine.deleted.set()

    async def stopped() -> list[str] | None:
        lines = [r.getMessage() for r in caplog.records if r.name == "workers.worker" and ": stopped" in r.getMessage()]
        return lines or None

    lines = await wait_for(stopped, timeout=60)
    assert len(lines) == 1 and "the task was deleted" in lines[0], lines
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_task_given_back_at_shutdown_is_named_in_its_log_line(
    client: httpx.AsyncClient, sessions: Sessions, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    created = await upload(client)
    engine = StallingEngine(give_up_seconds=120)
    worker = Worker(
        sessions=sessions, engine=engine, settings=settings.model_copy(update={"shutdown_grace_seconds": 0.1})
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await wait_status(client, created["id"], "running")
    stop.set()
    await asyncio.wait_for(running, timeout=60)
    [line] = [r for r in caplog.records if "given back to the queue" in r.getMessage()]
    assert getattr(line, "task_id", None) == created["id"]
    assert (await client.get(f"/v1/tasks/{created['id']}")).json()["status"] == "queued"


@pytest.mark.parametrize("path", ["", "/result", "/subtitles", "/cancel"])
async def test_unknown_ids_are_404(client: httpx.AsyncClient, path: str) -> None:
    method = client.post if path == "/cancel" else client.get
    response = await method(f"/v1/tasks/no-such-task{path}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "No task with id 'no-such-task'."


async def test_result_and_subtitles_before_completion_are_409(client: httpx.AsyncClient) -> None:
    created = await upload(client)
    for path in ("/result", "/subtitles"):
        response = await client.get(f"/v1/tasks/{created['id']}{path}")
        assert response.status_code == 409 and "queued" in response.json()["detail"]


async def test_list_filters_pagination_and_total(
    client: httpx.AsyncClient, sessions: Sessions, task_factory: Callable[..., Awaitable[Task]]
) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(7):
        await task_factory(
            sessions,
            created_at=base + timedelta(minutes=i),
            priority=i % 3,
            language="en" if i < 4 else "fr",
            status="failed" if i == 6 else "queued",
            error_type="UnreadableMedia" if i == 6 else None,
            task_type="translate" if i == 5 else "transcribe",
            model="tiny.en" if i == 3 else "base",
        )
    page = (await client.get("/v1/tasks", params={"limit": 3})).json()
    assert page["total"] == 7 and len(page["items"]) == 3 and page["next_cursor"]
    seen = [t["created_at"] for t in page["items"]]
    while page["next_cursor"]:
        page = (await client.get("/v1/tasks", params={"limit": 3, "cursor": page["next_cursor"]})).json()
        seen += [t["created_at"] for t in page["items"]]
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == 7  # newest first, each once

    async def total(**params: Any) -> int:
        response = await client.get("/v1/tasks", params=params)
        assert response.status_code == 200, response.text
        return int(response.json()["total"])

    assert await total(status="failed") == 1
    assert await total(has_error="true") == 1 and await total(has_error="false") == 6
    assert await total(priority="high") == 3
    assert await total(task_type="translate") == 1
    assert await total(language="fr") == 3
    assert await total(model="tiny.en") == 1
    assert await total(created_after="2026-01-01T00:03:00Z") == 4
    assert await total(created_before="2026-01-01T00:03:00Z") == 3
    assert await total(created_after="2026-01-01T00:02:00Z", created_before="2026-01-01T00:05:00Z", language="en") == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "done"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 1000}, "limit"),
        ({"cursor": "!!!"}, "cursor"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),
        ({"created_after": "2026-01-01T00:00Z"}, "created_after"),  # no seconds: not the schema's date-time
        ({"created_before": "2026-01-01 00:00:00Z"}, "created_before"),
    ],
)
async def test_list_rejects_bad_parameters(client: httpx.AsyncClient, params: dict[str, Any], field: str) -> None:
    response = await client.get("/v1/tasks", params=params)
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


async def test_health_and_docs(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    body = spec["paths"]["/v1/tasks"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "audio/*", "video/*"} <= set(body)
    properties = body["multipart/form-data"]["schema"]["properties"]
    undocumented = [name for name, prop in properties.items() if not prop.get("description")]
    assert undocumented == []
    assert [name for name, prop in properties.items() if name != "file" and not prop.get("examples")] == []
    for path in spec["paths"].values():
        for operation in path.values():
            assert operation.get("description"), operation["summary"]
            for parameter in operation.get("parameters", []):
                example = parameter.get("examples") or parameter["schema"].get("examples")
                assert parameter.get("description") and example, parameter["name"]


@pytest.mark.parametrize("db_url", ["mariadb", "postgresql"], indirect=True)
async def test_a_cancel_racing_a_claim_asks_the_running_task_to_stop(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    """A cancel that arrives while a worker's claim is committing must not overwrite the claimed task with
    `cancelled` (its media deleted under the worker): it waits for the claim, then asks the running task to stop."""
    created = await upload(client)
    engine = create_engine(settings.resolved_database_url)
    waiting = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        if engine.dialect.name == "postgresql"
        else "SELECT count(*) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'"
    )
    # An administrator sees who waits for a lock (MariaDB asks for the PROCESS privilege, which the test user lacks).
    url = make_url(settings.resolved_database_url)
    admin = f"mysql+asyncmy://root@{url.host}:{url.port}/{url.database}" if url.get_backend_name() == "mysql" else None
    watcher = create_engine(admin or settings.resolved_database_url)
    try:
        async with engine.connect() as claimer, watcher.connect() as observer:
            claim = await claimer.begin()  # a worker's claim, between its SELECT ... FOR UPDATE and its COMMIT
            await claimer.execute(select(Task.id).where(Task.id == created["id"]).with_for_update())
            await claimer.execute(
                update(Task)
                .where(Task.id == created["id"])
                .values(status="running", lease_token="claim-token", lease_owner="a-worker", attempts=1)
            )
            cancel = asyncio.create_task(client.post(f"/v1/tasks/{created['id']}/cancel"))

            async def blocked() -> bool:
                return bool((await observer.exec_driver_sql(waiting)).scalar())

            await wait_for(blocked, timeout=30)  # the cancel waits on the claimed row
            await claim.commit()
            response = await cancel
    finally:
        await engine.dispose()
        await watcher.dispose()
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "running"
    reader = create_engine(settings.resolved_database_url)
    try:
        async with session_factory(reader)() as session:
            task = await session.get(Task, created["id"])
            assert task is not None
            assert (task.status, task.lease_token, task.cancel_requested) == ("running", "claim-token", True)
            media = select(func.count()).select_from(MediaChunk).where(MediaChunk.task_id == task.id)
            assert await session.scalar(media), "the claimed task keeps its media"
    finally:
        await reader.dispose()

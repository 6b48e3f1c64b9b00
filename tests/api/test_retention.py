"""Retention through the API and real workers: a finished task is deleted with everything it owns once its time
passes (WHISPER_RETENTION_SECONDS or its own delete_after_seconds), by one worker at a time; unfinished tasks never
are; the task JSON says when, and /metrics counts the deletions."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import (
    MediaChunk,
    Summary,
    Task,
    TaskDeletion,
    TaskNumber,
    TaskPartial,
    TaskResult,
    WebhookAttempt,
    WebhookEvent,
)
from app.db.types import utcnow
from app.errors import UnreadableMedia
from app.settings import MAX_RETENTION_SECONDS, Settings
from tests.api.test_operations import scrape, value
from tests.api.test_task_lifecycle import upload, wait_status
from tests.api.test_webhooks import receiver, settled  # noqa: F401  (receiver is a fixture)
from tests.audio import clip
from tests.conftest import app_client, wait_for
from tests.fakes import FakeEngine

Sessions = async_sessionmaker[AsyncSession]
StartWorker = Callable[..., Awaitable[Any]]
OWNED = (MediaChunk, TaskResult, TaskPartial, WebhookEvent, WebhookAttempt, Summary)
"""Every table whose rows belong to a task (webhook attempts through their event)."""
FRESH = {"dedupe": "false"}  # the same clip each time: a task of its own each time


@pytest.fixture
def settings(make_settings: Callable[..., Settings], llm: str) -> Settings:
    # Housekeeping (and so the purge) every 0.1 s; callbacks and the summary LLM on loopback.
    return make_settings(allowed_hosts=["127.0.0.1"], llm_base_url=llm, llm_api_key="sk-test", reap_seconds=0.1)


async def rows(sessions: Sessions, model: type[Any]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def gone(client: httpx.AsyncClient, task_id: str) -> None:
    async def deleted() -> bool:
        return (await client.get(f"/v1/tasks/{task_id}")).status_code == 404

    await wait_for(deleted, timeout=30)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_a_finished_task_is_deleted_with_everything_it_owns(
    client: httpx.AsyncClient,
    sessions: Sessions,
    run_worker: StartWorker,
    receiver: str,  # noqa: F811
    task_factory: Callable[..., Awaitable[Task]],
) -> None:
    await run_worker(FakeEngine())  # the server keeps tasks until deleted
    created = await upload(client, callback_url=f"{receiver}/hook", language="en")
    done = await wait_status(client, created["id"], "completed")
    assert done["delete_at"] is None and done["delete_after_seconds"] is None
    await settled(client, created["id"])  # its webhook event, with a delivery attempt
    assert (await client.post(f"/v1/tasks/{created['id']}/summaries", json={})).status_code == 201
    async with sessions() as session, session.begin():  # what a crash mid-run could leave behind
        session.add(TaskPartial(task_id=created["id"], seq=0, segment={"id": 0, "start": 0, "end": 1, "text": "x"}))
        session.add(MediaChunk(task_id=created["id"], seq=0, data=b"leftover"))
    # Unfinished tasks, old and due by their own retention were they finished: one queued to run in an hour (a
    # requeued task backing off), one running on a live worker elsewhere.
    long_ago = utcnow() - timedelta(days=30)
    unfinished = [
        await task_factory(sessions, run_at=utcnow() + timedelta(hours=1), created_at=long_ago, delete_after_seconds=1),
        await task_factory(
            sessions,
            status="running",
            lease_token="elsewhere",
            lease_owner="another-worker",
            lease_expires_at=utcnow() + timedelta(hours=1),
            created_at=long_ago,
            started_at=long_ago,
            delete_after_seconds=1,
        ),
    ]
    assert [await rows(sessions, model) for model in OWNED] == [1, 1, 1, 1, 1, 1]
    purged = value(await scrape(client), "whisper_tasks_purged_total")

    # Retention turned on: the task that finished before gets a deletion time from its finish, and goes.
    await run_worker(FakeEngine(), retention_seconds=1)
    await gone(client, created["id"])
    assert [await rows(sessions, model) for model in OWNED] == [0, 0, 0, 0, 0, 0]
    assert value(await scrape(client), "whisper_tasks_purged_total") == purged + 1
    async with sessions() as session:  # event streams are told, as for any deletion; its number row goes too
        assert await session.get(TaskDeletion, created["id"]) is not None
        assert await session.scalar(select(TaskNumber).where(TaskNumber.task_id == created["id"])) is None
    for task in unfinished:
        kept = (await client.get(f"/v1/tasks/{task.id}")).json()
        assert kept["status"] == task.status and kept["delete_at"] is None


@pytest.mark.parametrize("outcome", ["completed", "failed"])
async def test_the_task_json_says_when_it_will_be_deleted(
    make_settings: Callable[..., Settings], sessions: Sessions, run_worker: StartWorker, outcome: str
) -> None:
    async with app_client(make_settings(retention_seconds=3600)) as client:
        server_default = await upload(client, **FRESH)
        own = await upload(client, delete_after_seconds="60", **FRESH)
        cancelled = await upload(client, delete_after_seconds="120", **FRESH)
        assert (server_default["delete_after_seconds"], own["delete_after_seconds"]) == (3600, 60)
        assert server_default["delete_at"] is None and own["delete_at"] is None  # not finished yet
        ended = (await client.post(f"/v1/tasks/{cancelled['id']}/cancel")).json()
        assert at(ended["delete_at"]) == at(ended["finished_at"]) + timedelta(seconds=120)

        engine = FakeEngine() if outcome == "completed" else FakeEngine(fail_with=UnreadableMedia("damaged"))
        await run_worker(engine, retention_seconds=3600)
        for task, seconds in ((server_default, 3600), (own, 60)):
            finished = await wait_status(client, task["id"], outcome)
            assert at(finished["delete_at"]) == at(finished["finished_at"]) + timedelta(seconds=seconds)
            listed = (await client.get("/v1/tasks", params={"status": outcome})).json()["items"]
            assert finished["delete_at"] in [item["delete_at"] for item in listed]
        if outcome == "completed":  # the same audio again: completed at once with the earlier result (dedupe)
            reused = await upload(client, delete_after_seconds="30")
            assert reused["status"] == "completed" and reused["reused_from"] is not None
            assert at(reused["delete_at"]) == at(reused["finished_at"]) + timedelta(seconds=30)


@pytest.mark.parametrize("retention", [0, 3600])
async def test_a_task_of_its_own_retention_goes_while_the_others_stay(
    make_settings: Callable[..., Settings], sessions: Sessions, run_worker: StartWorker, retention: int
) -> None:
    """Whether the server keeps tasks for ever (0) or an hour, a task that asks for 1 s is deleted 1 s after it
    finishes, and the others stay with their own deletion time."""
    settings = make_settings(retention_seconds=retention, reap_seconds=0.1)
    async with app_client(settings) as client:
        await run_worker(FakeEngine(), retention_seconds=retention, reap_seconds=0.1)
        short = await upload(client, delete_after_seconds="1", **FRESH)
        other = await upload(client, **FRESH)
        await gone(client, short["id"])
        kept = await wait_status(client, other["id"], "completed")
        if retention:
            assert at(kept["delete_at"]) == at(kept["finished_at"]) + timedelta(seconds=retention)
        else:
            assert kept["delete_at"] is None


async def test_the_openai_routes_take_delete_after_seconds(
    make_settings: Callable[..., Settings], sessions: Sessions, run_worker: StartWorker
) -> None:
    async with app_client(make_settings(retention_seconds=600, reap_seconds=0.1)) as client:
        await run_worker(FakeEngine(), retention_seconds=600, reap_seconds=0.1)
        with clip("jfk.wav").open("rb") as f:
            answered = await client.post(
                "/v1/audio/transcriptions", files={"file": ("jfk.wav", f)}, data={"delete_after_seconds": "1"}
            )
        assert answered.status_code == 200 and answered.json()["text"].startswith("segment 0.")

        async def none_left() -> bool:
            return (await client.get("/v1/tasks")).json()["total"] == 0

        await wait_for(none_left, timeout=30)
        for path, seconds, message in (
            ("/v1/audio/transcriptions", "0", "greater than or equal to 1"),
            ("/v1/audio/translations", "1.5", "valid integer"),
            ("/v1/audio/transcriptions", "601", "may be at most 600"),
        ):
            with clip("jfk.wav").open("rb") as f:
                refused = await client.post(
                    path, files={"file": ("jfk.wav", f)}, data={"delete_after_seconds": seconds}
                )
            error = refused.json()["error"]
            assert refused.status_code == 400 and error["param"] == "delete_after_seconds", refused.text
            assert message in error["message"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("0", "greater than or equal to 1"),
        ("-5", "greater than or equal to 1"),
        ("soon", "valid integer"),
        ("1.5", "valid integer"),
        (str(MAX_RETENTION_SECONDS + 1), f"less than or equal to {MAX_RETENTION_SECONDS}"),
        ("7201", "may be at most 7200: this server deletes finished tasks after 7200 s"),
    ],
)
async def test_a_bad_delete_after_seconds_is_422_naming_it(
    make_settings: Callable[..., Settings], sessions: Sessions, given: str, message: str
) -> None:
    async with app_client(make_settings(retention_seconds=7200)) as client:
        with clip("jfk.wav").open("rb") as f:
            as_form = await client.post(
                "/v1/tasks", files={"file": ("jfk.wav", f)}, data={"delete_after_seconds": given}
            )
        as_json = await client.post(
            "/v1/tasks", json={"file_url": "https://example.com/a.mp3", "delete_after_seconds": given}
        )
        as_platform = await client.post(
            "/v1/tasks/tiktok", json={"url": "https://www.tiktok.com/@a/video/1", "delete_after_seconds": given}
        )
        for response in (as_form, as_json, as_platform):
            problem = response.json()
            assert response.status_code == 422, response.text
            fields = [error["field"] for error in problem.get("errors", [])] or [problem.get("field")]
            assert fields == ["delete_after_seconds"] and message in response.text
        assert (await client.get("/v1/tasks")).json()["total"] == 0


async def test_two_workers_never_purge_at_once(
    make_settings: Callable[..., Settings],
    sessions: Sessions,
    run_worker: StartWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="workers.worker")
    # A lease longer than the test: the worker that takes the first turn keeps it throughout.
    overrides: dict[str, Any] = {"retention_seconds": 1, "reap_seconds": 0.1, "lease_seconds": 120}
    async with app_client(make_settings(**overrides)) as client:
        workers = [await run_worker(FakeEngine(), **overrides) for _ in range(2)]
        created = [await upload(client, **FRESH) for _ in range(6)]
        for task in created:
            await gone(client, task["id"])
        lines = [r for r in caplog.records if r.getMessage().endswith("finished tasks past their retention")]
        purgers = {getattr(r, "worker_id", None) for r in lines}
        assert len(purgers) == 1 and purgers <= {w.worker_id for w in workers}, purgers
        assert sum(int(r.getMessage().split()[1]) for r in lines) == len(created)
        assert value(await scrape(client), "whisper_tasks_purged_total") == len(created)

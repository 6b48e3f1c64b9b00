"""Operations endpoints: /metrics moves by the right amounts after real tasks; /ready follows the database."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from app import logs
from app.settings import Settings
from tests.api.test_task_lifecycle import upload, wait_status
from tests.conftest import app_client, wait_for
from tests.fakes import FakeEngine

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(allowed_hosts=["127.0.0.1"])


async def test_metrics_move_by_the_right_amounts(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]]
) -> None:
    before = await scrape(client)
    assert value(before, "whisper_queue_depth", priority="normal") == 0
    fresh = {"dedupe": "false"}  # the same clip each time: transcribe it every time
    done = [await upload(client, **fresh), await upload(client, priority="high", **fresh)]
    refused = await upload(client, callback_url="http://127.0.0.1:9/hook", **fresh)  # nothing listens on port 9
    cancelled = await upload(client, priority="low", **fresh)
    assert (await client.post(f"/v1/tasks/{cancelled['id']}/cancel")).status_code == 200
    queued = await scrape(client)
    assert value(queued, "whisper_queue_depth", priority="normal") == 2
    assert value(queued, "whisper_queue_depth", priority="high") == 1
    assert value(queued, "whisper_queue_oldest_age_seconds", priority="normal") > 0
    assert value(queued, "whisper_queue_oldest_age_seconds", priority="high") > 0

    await run_worker(FakeEngine(segment_seconds=11.0))
    for task in [*done, refused]:
        await wait_status(client, task["id"], "completed")

    async def gave_up() -> bool:
        events = (await client.get(f"/v1/tasks/{refused['id']}/callbacks")).json()["items"]
        return bool(events) and events[0]["status"] == "failed"

    await wait_for(gave_up, timeout=30)  # 1 try + 3 retries
    after = await scrape(client)
    assert value(after, "whisper_tasks", status="completed", priority="normal") == 2
    assert value(after, "whisper_tasks", status="completed", priority="high") == 1
    assert value(after, "whisper_tasks", status="cancelled", priority="low") == 1
    assert value(after, "whisper_queue_depth", priority="normal") == 0
    assert value(after, "whisper_queue_oldest_age_seconds", priority="normal") == 0
    assert value(after, "whisper_audio_processed_seconds_total") == pytest.approx(33.0)
    assert value(after, "whisper_task_duration_seconds_count") == 3
    assert value(after, "whisper_task_duration_seconds_bucket", le="+Inf") == 3
    assert value(after, "whisper_task_realtime_factor_count") == 3
    assert value(after, "whisper_task_realtime_factor_bucket", le="5.0") == 3
    assert value(after, "whisper_webhook_attempts_total", outcome="no_answer") == 4
    assert value(after, "whisper_workers_alive") == 1
    posted = ("whisper_http_request_duration_seconds_count", "POST", "/v1/tasks", "201")
    key = {"method": posted[1], "route": posted[2], "status": posted[3]}
    assert value(after, posted[0], **key) - value(before, posted[0], **key) == 4


class TcpProxy:
    """A TCP proxy to a database server that can be cut and restored, to make the database unreachable on demand."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.port = 0
        self.pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for pipe in self.pipes:
            pipe.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            finally:
                sink.close()

        for task in (pipe(reader, upstream_writer), pipe(upstream_reader, writer)):
            running = asyncio.create_task(task)
            self.pipes.add(running)
            running.add_done_callback(self.pipes.discard)


@pytest.fixture
async def proxy(server_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    url = make_url(server_url)
    assert url.port
    running = TcpProxy(url.port)
    await running.start()
    yield running, url.set(port=running.port).render_as_string(hide_password=False)
    with contextlib.suppress(Exception):
        await running.cut()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # unused: the app runs on `proxy`'s server
async def test_ready_fails_while_the_database_is_unreachable_and_recovers(
    make_settings: Callable[..., Settings], proxy: tuple[TcpProxy, str]
) -> None:
    tcp, url = proxy
    async with app_client(make_settings(database_url=url)) as http:
        ok = await http.get("/ready")
        assert ok.status_code == 200 and ok.json()["status"] == "ready"
        assert ok.json()["schema_version"] == ok.json()["expected_schema"]
        await tcp.cut()
        down = await http.get("/ready")
        assert down.status_code == 503 and down.json()["status"] == "unavailable" and down.json()["database"] != "ok"
        assert (await http.get("/health")).status_code == 200  # alive, just not ready
        listing = await http.get("/v1/tasks")  # a refused connection is the database being away, not a server bug
        assert listing.status_code == 503 and listing.headers["retry-after"], listing.text
        await tcp.start()

        async def recovered() -> bool:
            return (await http.get("/ready")).status_code == 200

        await wait_for(recovered, timeout=30, interval=0.5)


async def test_ready_names_a_schema_that_is_behind(make_settings: Callable[..., Settings], tmp_path: Any) -> None:
    empty = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    async with app_client(make_settings(database_url=empty)) as http:
        response = await http.get("/ready")
    assert response.status_code == 503 and "alembic_version" in response.json()["database"]


async def test_every_log_line_about_a_task_names_it_and_its_worker(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    task = await upload(client, callback_url="http://127.0.0.1:9/hook", dedupe="false")
    worker = await run_worker(FakeEngine(segment_seconds=4.0))
    await wait_status(client, task["id"], "completed")
    await wait_for(lambda: asyncio.sleep(0, result=any("webhook" in r.getMessage() for r in caplog.records)))
    # The service's lines (not the test client's own httpx lines) that mention the task.
    about_task = [r for r in caplog.records if task["id"] in r.getMessage() and r.name != "httpx"]
    assert len(about_task) >= 3  # started, completed, webhook attempt
    assert all(getattr(r, "task_id", None) == task["id"] for r in about_task)
    assert all(getattr(r, "worker_id", None) == worker.worker_id for r in about_task if r.name.startswith("workers"))
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert not any("segment 0." in line for line in info)  # no transcript text
    assert not any("whsec_" in line for line in info)  # no secrets

    stream = io.StringIO()
    logs.configure("INFO", "json")
    logging.getLogger().handlers[0].stream = stream  # type: ignore[attr-defined]
    try:
        token = logs.task_id.set("t-123")
        logging.getLogger("workers.worker").info("task %s: completed", "t-123")
        logs.task_id.reset(token)
    finally:
        logging.getLogger().handlers.clear()
    line = json.loads(stream.getvalue())
    assert line["task_id"] == "t-123" and line["level"] == "INFO" and line["message"] == "task t-123: completed"
    assert line["logger"] == "workers.worker" and "time" in line


async def test_metrics_series_stay_bounded_whatever_the_request_line(client: httpx.AsyncClient) -> None:
    """Anyone can write the method and path: 50 random ones add at most a few series, not one per request."""

    def series(samples: Samples) -> set[tuple[tuple[str, str], ...]]:
        return {labels for name, labels in samples if name.startswith("whisper_http_request_duration_seconds")}

    before = series(await scrape(client))
    for _ in range(50):
        method = "X" + secrets.token_hex(4).upper()
        await client.request(method, f"/{secrets.token_hex(6)}/{secrets.token_hex(3)}")
        await client.request("GET", f"/nope-{secrets.token_hex(6)}")
    grown = series(await scrape(client)) - before
    label_sets = {tuple((k, v) for k, v in labels if k != "le") for labels in grown}
    assert len(label_sets) <= 4, sorted(label_sets)

"""Signed callbacks against a real HTTP receiver on loopback: retries, the attempt log, redirects, redelivery."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.services.webhooks import WebhookDispatcher, WebhookVerificationError, events_of, verify_webhook
from app.settings import Settings
from tests.api.test_task_lifecycle import upload, wait_status
from tests.conftest import WEBHOOK_SECRET, complete_task, wait_for
from tests.fakes import FakeEngine

StartWorker = Callable[..., Awaitable[Any]]


class Receiver(BaseHTTPRequestHandler):
    """Answers from a script of status codes per path (the last one repeats), after an optional scripted delay per
    path; records every request."""

    script: ClassVar[dict[str, list[int]]] = {}
    delays: ClassVar[dict[str, list[float]]] = {}
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        codes = self.script.get(self.path, [200])
        code = codes.pop(0) if len(codes) > 1 else codes[0]
        if delays := self.delays.get(self.path):
            time.sleep(delays.pop(0))  # a receiver that takes this long to answer
        self.send_response(code)
        if code in (301, 302, 307):
            self.send_header("Location", "/moved")
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(f"answered {code}".encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.script, Receiver.delays, Receiver.received = {}, {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(allowed_hosts=["127.0.0.1"])


async def callbacks(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    return list((await client.get(f"/v1/tasks/{task_id}/callbacks")).json()["items"])


async def settled(client: httpx.AsyncClient, task_id: str) -> list[dict[str, Any]]:
    async def done() -> list[dict[str, Any]] | None:
        items = await callbacks(client, task_id)
        return items if items and all(e["status"] != "pending" for e in items) else None

    return list(await wait_for(done, timeout=20))


async def test_a_completed_task_is_announced_with_a_valid_signature(
    client: httpx.AsyncClient, run_worker: StartWorker, receiver: str
) -> None:
    created = await upload(client, callback_url=f"{receiver}/hook")
    await run_worker(FakeEngine(segment_seconds=11.0))
    await wait_status(client, created["id"], "completed")
    [event] = await settled(client, created["id"])
    assert event["status"] == "delivered" and event["event"] == "task.completed"
    assert event["next_attempt_at"] is None  # nothing more is due
    assert [(a["attempt"], a["status_code"], a["response_excerpt"]) for a in event["attempts"]] == [
        (1, 200, "answered 200")
    ]
    [request] = Receiver.received
    payload = verify_webhook(request["body"], request["headers"], WEBHOOK_SECRET)
    assert payload["data"] == {"task_id": created["id"], "status": "completed", "text": "segment 0."}
    assert request["headers"]["webhook-id"] == event["id"]
    tampered = request["body"].replace(b"segment 0.", b"segment 9.")
    with pytest.raises(WebhookVerificationError):
        verify_webhook(tampered, request["headers"], WEBHOOK_SECRET)


TASK_SECRET = "whsec_" + base64.b64encode(b"a-secret-for-this-task-only!").decode()


async def test_a_per_task_secret_signs_that_tasks_callbacks_and_is_never_shown(
    client: httpx.AsyncClient, run_worker: StartWorker, receiver: str
) -> None:
    created = await upload(client, callback_url=f"{receiver}/own", callback_secret=TASK_SECRET)
    await run_worker(FakeEngine(segment_seconds=11.0))
    [event] = await settled(client, created["id"])
    assert event["status"] == "delivered"
    [request] = Receiver.received
    assert verify_webhook(request["body"], request["headers"], TASK_SECRET)["data"]["task_id"] == created["id"]
    with pytest.raises(WebhookVerificationError):
        verify_webhook(request["body"], request["headers"], WEBHOOK_SECRET)
    shown = (await client.get(f"/v1/tasks/{created['id']}")).text + (await client.get("/v1/tasks")).text
    assert TASK_SECRET.removeprefix("whsec_") not in shown + json.dumps(created)


@pytest.mark.parametrize(
    ("secret", "message"),
    [("not-whsec", "must start with whsec_"), ("whsec_***", "base64"), ("whsec_c2hvcnQ=", "at least 16 bytes")],
)
async def test_a_malformed_per_task_secret_is_refused(client: httpx.AsyncClient, secret: str, message: str) -> None:
    response = await client.post(
        "/v1/tasks",
        json={"file_url": "https://e.com/a.mp3", "callback_url": "https://e.com/h", "callback_secret": secret},
    )
    assert response.status_code == 422 and message in response.text and "callback_secret" in response.text


@pytest.mark.parametrize("userinfo", ["u:p@", "user@", ":secret@"])
async def test_a_callback_url_with_credentials_is_refused(client: httpx.AsyncClient, userinfo: str) -> None:
    """Credentials in the URL would not be sent; say so instead of dropping them silently."""
    response = await client.post(
        "/v1/tasks", json={"file_url": "https://e.com/a.mp3", "callback_url": f"https://{userinfo}e.com/hook"}
    )
    assert response.status_code == 422 and "callback_url" in response.text, response.text
    assert "credentials" in response.json()["detail"] and "not sent" in response.json()["detail"]
    assert (await client.get("/v1/tasks")).json()["total"] == 0


async def test_a_receiver_failing_twice_gets_exactly_three_attempts(
    client: httpx.AsyncClient, run_worker: StartWorker, receiver: str
) -> None:
    Receiver.script["/flaky"] = [500, 503, 200]
    Receiver.delays["/flaky"] = [0.2, 0.5, 0.8]
    created = await upload(client, callback_url=f"{receiver}/flaky")
    await run_worker(FakeEngine(segment_seconds=11.0))
    [event] = await settled(client, created["id"])
    assert event["status"] == "delivered"
    assert [a["status_code"] for a in event["attempts"]] == [500, 503, 200]
    latencies = [a["latency_ms"] for a in event["attempts"]]
    assert all(ms >= delay for ms, delay in zip(latencies, [200, 500, 800], strict=True)), (
        latencies
    )  # each answer's wait
    assert [r["headers"]["webhook-id"] for r in Receiver.received] == [event["id"]] * 3


@pytest.mark.parametrize(("code", "path"), [(302, "/redirect"), (400, "/bad"), (404, "/gone")])
async def test_redirects_and_client_errors_are_final(
    client: httpx.AsyncClient, run_worker: StartWorker, receiver: str, code: int, path: str
) -> None:
    Receiver.script[path] = [code]
    created = await upload(client, callback_url=f"{receiver}{path}")
    await run_worker(FakeEngine(segment_seconds=11.0))
    [event] = await settled(client, created["id"])
    assert event["status"] == "failed" and [a["status_code"] for a in event["attempts"]] == [code]
    assert event["next_attempt_at"] is None
    assert [r["path"] for r in Receiver.received] == [path]  # the redirect target was never asked
    Receiver.script[path] = [200]
    assert (await client.post(f"/v1/tasks/{created['id']}/callbacks/redeliver")).status_code == 202
    [again] = await settled(client, created["id"])
    assert again["status"] == "delivered" and [a["status_code"] for a in again["attempts"]] == [code, 200]
    assert Receiver.received[0]["headers"]["webhook-id"] == Receiver.received[1]["headers"]["webhook-id"]


async def test_a_non_allowlisted_callback_is_refused_and_logged(
    make_settings: Callable[..., Settings],
    sessions: async_sessionmaker[AsyncSession],
    task_factory: Callable[..., Awaitable[Any]],
    receiver: str,
) -> None:
    task = await task_factory(sessions, callback_url=f"{receiver}/hook")
    await complete_task(sessions, task.id)
    dispatcher = WebhookDispatcher(sessions=sessions, settings=make_settings())  # no allowlist: loopback refused
    assert await dispatcher.dispatch_once() == 1
    assert Receiver.received == []
    async with sessions() as session:
        [(event, attempts)] = await events_of(session=session, task_id=task.id)
    assert event.status == "failed" and attempts[0].error and attempts[0].error.startswith("URLNotAllowed")


async def test_an_event_left_by_a_dead_worker_is_delivered_once_by_racing_dispatchers(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: Callable[..., Awaitable[Any]],
    receiver: str,
) -> None:
    # The worker committed the completion (and so the outbox row) and died before any delivery.
    task = await task_factory(sessions, callback_url=f"{receiver}/once")
    await complete_task(sessions, task.id)
    dispatchers = [WebhookDispatcher(sessions=sessions, settings=settings) for _ in range(4)]
    sent = await asyncio.gather(*(d.dispatch_once() for d in dispatchers))
    assert sum(sent) == 1 and len(Receiver.received) == 1
    assert json.loads(Receiver.received[0]["body"])["data"]["task_id"] == task.id

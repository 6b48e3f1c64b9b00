"""Webhook delivery against hostile or slow receivers on loopback: deadlines, reply caps, claims, malformed answers."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.models import WebhookAttempt, WebhookEvent
from app.db.types import utcnow
from app.services.webhooks import WebhookDispatcher, events_of
from app.settings import Settings
from tests.conftest import app_client, complete_task, wait_for

# What these tests drive (a foreign API's translation, fetching, signing) does not depend on the database kind; the
# queue, storage and API tests run on each (tests/integration, tests/e2e, tests/api/test_create_task.py and others).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

MakeTask = Callable[..., Awaitable[Any]]
CLAIMED_BYTES = 2**30  # what /huge claims to send
SENT_AT_MOST = 128 * 2**20  # what it really sends before closing (a client reading everything gets this far)


class Receiver(BaseHTTPRequestHandler):
    """Misbehaving receivers by path; counts requests, concurrent requests per webhook-id and bytes sent."""

    lock = threading.Lock()
    release = threading.Event()  # ends /hold (and every endless reply at teardown)
    started: ClassVar[Counter[str]] = Counter()
    finished: ClassVar[Counter[str]] = Counter()
    active: ClassVar[Counter[str]] = Counter()
    most_active: ClassVar[Counter[str]] = Counter()
    sent: ClassVar[Counter[str]] = Counter()
    query: dict[str, list[str]]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        webhook_id = self.headers["webhook-id"]
        url = urlsplit(self.path)
        self.path, self.query = url.path, parse_qs(url.query)
        with self.lock:
            self.started[self.path] += 1
            self.active[webhook_id] += 1
            self.most_active[webhook_id] = max(self.most_active[webhook_id], self.active[webhook_id])
        try:
            self._answer()
        except OSError:
            pass  # the client hung up, as it should on endless replies
        finally:
            with self.lock:
                self.active[webhook_id] -= 1
                self.finished[self.path] += 1

    def _answer(self) -> None:
        if self.path == "/trickle":  # a byte at a time: no single read ever waits long
            self._start(200, length=10**6)
            while not self.release.is_set() and not self._client_gone(0.1):
                self._write(b".")
        elif self.path == "/huge":
            self._start(200, length=CLAIMED_BYTES)
            chunk = b"x" * 65536
            while self.sent[self.path] < SENT_AT_MOST and not self.release.is_set():
                self._write(chunk)
        elif self.path == "/hold":
            self.release.wait(60)
            self._start(200, length=2)
            self._write(b"ok")
        elif self.path == "/busy":
            self._start(503, length=2, headers={"Retry-After": self.query["retry_after"][0]})
            self._write(b"no")
        else:
            self._start(200, length=2)
            self._write(b"ok")

    def _client_gone(self, wait: float) -> bool:
        """Whether the client closed the connection (checked for up to `wait` seconds)."""
        readable, _, _ = select.select([self.connection], [], [], wait)
        return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)

    def _start(self, code: int, *, length: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.flush()

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        with self.lock:
            self.sent[self.path] += len(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    for counter in (Receiver.started, Receiver.finished, Receiver.active, Receiver.most_active, Receiver.sent):
        counter.clear()
    Receiver.release.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    Receiver.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(allowed_hosts=["127.0.0.1"], webhook_timeout_seconds=2.0, webhook_retry_schedule=[600.0])


@asynccontextmanager
async def dispatching(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> AsyncIterator[asyncio.Event]:
    """A dispatcher running until the block ends; yields its stop event."""
    stop = asyncio.Event()
    runner = asyncio.create_task(WebhookDispatcher(sessions=sessions, settings=settings, poll_seconds=0.05).run(stop))
    try:
        yield stop
    finally:
        stop.set()
        done, _ = await asyncio.wait([runner], timeout=30)
        runner.cancel()
        assert runner in done, "the dispatcher did not stop"
        runner.result()


async def announced(sessions: async_sessionmaker[AsyncSession], make_task: MakeTask, url: str) -> str:
    """A completed task whose webhook event is due."""
    task = await make_task(sessions, callback_url=url)
    await complete_task(sessions, task.id)
    return str(task.id)


Attempted = tuple[WebhookEvent, list[WebhookAttempt]]


async def event_of(sessions: async_sessionmaker[AsyncSession], task_id: str) -> Attempted:
    async with sessions() as session:
        [(event, attempts)] = await events_of(session=session, task_id=task_id)
    return event, attempts


def attempted(sessions: async_sessionmaker[AsyncSession], task_id: str, n: int = 1) -> Callable[[], Awaitable[Any]]:
    async def check() -> Attempted | None:
        event, attempts = await event_of(sessions, task_id)
        return (event, attempts) if len(attempts) >= n else None

    return check


def delivered(sessions: async_sessionmaker[AsyncSession], task_id: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        event, _ = await event_of(sessions, task_id)
        return event.status == "delivered"

    return check


async def test_a_trickling_receiver_times_out_at_the_deadline_and_does_not_hold_up_shutdown(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], task_factory: MakeTask, receiver: str
) -> None:
    task_id = await announced(sessions, task_factory, f"{receiver}/trickle")
    async with dispatching(sessions, settings) as stop:
        await wait_for(lambda: _true(Receiver.started["/trickle"] == 1))
        stop.set()  # during the attempt: leaving the block waits for the dispatcher, which waits for the attempt
    event, [attempt] = await event_of(sessions, task_id)
    assert attempt.status_code is None and attempt.error and attempt.error.startswith("Timeout")
    assert attempt.latency_ms >= 2000 and "2 s" in attempt.error
    assert event.status == "pending"  # a timeout is retried (here in 600 s)


async def test_a_slow_receiver_does_not_delay_other_receivers(
    make_settings: Callable[..., Settings],
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    receiver: str,
) -> None:
    settings = make_settings(allowed_hosts=["127.0.0.1"], webhook_timeout_seconds=60.0)
    held = await announced(sessions, task_factory, f"{receiver}/hold")
    async with dispatching(sessions, settings):
        await wait_for(lambda: _true(Receiver.started["/hold"] == 1))
        other = await announced(sessions, task_factory, f"{receiver}/fast")
        await wait_for(delivered(sessions, other))
        assert Receiver.finished["/hold"] == 0  # still held: the other event did not wait for it
        Receiver.release.set()
        await wait_for(delivered(sessions, held))


async def test_an_endless_reply_is_not_read_past_a_few_kilobytes(
    make_settings: Callable[..., Settings],
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    receiver: str,
) -> None:
    settings = make_settings(allowed_hosts=["127.0.0.1"], webhook_timeout_seconds=60.0)
    task_id = await announced(sessions, task_factory, f"{receiver}/huge")
    async with dispatching(sessions, settings):
        event, [attempt] = await wait_for(attempted(sessions, task_id))
        await wait_for(lambda: _true(Receiver.finished["/huge"] == 1))
    assert event.status == "delivered" and attempt.status_code == 200
    assert attempt.response_excerpt == "x" * 500
    # The client hung up after a few KB; what the server got out is what the kernel's socket buffers took.
    assert Receiver.sent["/huge"] < 32 * 2**20


async def test_two_dispatchers_never_send_one_event_at_the_same_time(
    make_settings: Callable[..., Settings],
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    receiver: str,
) -> None:
    # The receiver never finishes answering (and sees at once when the client hangs up): each attempt lasts its
    # whole deadline, then is retried about a second later.
    settings = make_settings(
        allowed_hosts=["127.0.0.1"], webhook_timeout_seconds=1.0, webhook_retry_schedule=[1.0] * 10
    )
    task_id = await announced(sessions, task_factory, f"{receiver}/trickle")
    event, _ = await event_of(sessions, task_id)
    async with dispatching(sessions, settings), dispatching(sessions, settings):
        # Old claims ran out after 120 s while the first attempt still went on: wait long enough to see that.
        await wait_for(
            lambda: _true(Receiver.started["/trickle"] >= 3 or max(Receiver.most_active.values(), default=0) > 1),
            timeout=240,
        )
        assert Receiver.most_active == {event.id: 1}


@pytest.mark.parametrize(
    ("where", "status_code", "error"),
    [
        ("/busy?retry_after=99999999999999999999", 503, "Retry-After"),
        ("/busy?retry_after=Fri,%2031%20Dec%209999%2023:59:59%20GMT", 503, "Retry-After"),
        ("http://127.0.0.1:99999/hook", None, "InvalidURL: The callback URL cannot be used: Port out of range"),
    ],
)
async def test_a_malformed_answer_or_url_is_a_logged_final_failure(
    make_settings: Callable[..., Settings],
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    receiver: str,
    caplog: pytest.LogCaptureFixture,
    where: str,
    status_code: int | None,
    error: str,
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(allowed_hosts=["127.0.0.1"])
    task_id = await announced(sessions, task_factory, where if where.startswith("http") else receiver + where)
    assert await WebhookDispatcher(sessions=sessions, settings=settings).dispatch_once() == 1
    event, [attempt] = await event_of(sessions, task_id)
    assert event.status == "failed" and attempt.status_code == status_code
    assert attempt.error and error in attempt.error
    assert f"{event.id} for task {task_id} failed for good: {attempt.error}" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_unusable_retry_after_is_ignored(
    make_settings: Callable[..., Settings],
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    receiver: str,
) -> None:
    settings = make_settings(allowed_hosts=["127.0.0.1"], webhook_retry_schedule=[600.0])
    task_id = await announced(sessions, task_factory, f"{receiver}/busy?retry_after=soon")
    assert await WebhookDispatcher(sessions=sessions, settings=settings).dispatch_once() == 1
    event, [attempt] = await event_of(sessions, task_id)
    assert event.status == "pending" and attempt.status_code == 503 and attempt.error is None


async def test_deleting_a_task_while_its_event_is_delivered_drops_the_attempt_cleanly(
    make_settings: Callable[..., Settings],
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    receiver: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(allowed_hosts=["127.0.0.1"], webhook_timeout_seconds=60.0)
    task_id = await announced(sessions, task_factory, f"{receiver}/hold")
    async with app_client(settings) as client:  # the app's own dispatcher delivers
        await wait_for(lambda: _true(Receiver.started["/hold"] == 1))
        assert (await client.delete(f"/v1/tasks/{task_id}")).status_code == 204
        Receiver.release.set()
        await wait_for(lambda: _true("deleted" in caplog.text or _errors(caplog)))
        assert not _errors(caplog)
        other = await announced(sessions, task_factory, f"{receiver}/fast")
        await wait_for(delivered(sessions, other))
    assert not _errors(caplog)
    [line] = [r.getMessage() for r in caplog.records if "deleted" in r.getMessage()]
    assert task_id in line


async def test_redelivering_an_event_on_its_way_does_not_send_it_twice_at_once(
    make_settings: Callable[..., Settings],
    sessions: async_sessionmaker[AsyncSession],
    task_factory: MakeTask,
    receiver: str,
) -> None:
    settings = make_settings(allowed_hosts=["127.0.0.1"], webhook_timeout_seconds=60.0)
    task_id = await announced(sessions, task_factory, f"{receiver}/hold")
    async with app_client(settings) as client:
        await wait_for(lambda: _true(Receiver.started["/hold"] == 1))
        assert (await client.post(f"/v1/tasks/{task_id}/callbacks/redeliver")).status_code == 202
        event, _ = await event_of(sessions, task_id)
        assert event.status == "pending" and event.next_attempt_at > utcnow()  # still claimed: no dispatcher takes it
        Receiver.release.set()
        await wait_for(delivered(sessions, task_id))
    assert Receiver.started["/hold"] == 1


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def _true(value: Any) -> Any:
    return value

"""Callbacks are never refused for want of a secret: the cluster makes one, once, and `webhook-secret` shows it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import create_engine, session_factory
from app.services import cluster_settings
from app.services.webhooks import WebhookVerificationError, verify_webhook
from app.settings import Settings, check_webhook_secret
from tests.api.test_task_lifecycle import upload
from tests.conftest import WEBHOOK_SECRET, wait_for
from tests.fakes import FakeEngine


class Receiver(BaseHTTPRequestHandler):
    """Answers 200 and records every request."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append({"headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook_secret=None, allowed_hosts=["127.0.0.1"])


async def webhook_secret_command(database_url: str) -> str:
    """What `whisper-service webhook-secret` prints for this database.

    Run off the event loop: SQLite transactions take the write lock at BEGIN, so a worker on this loop that was
    mid-transaction when the loop blocked would hold the command off until it timed out.
    """
    env = {**os.environ, "WHISPER_DATABASE_URL": database_url}
    env.pop("WHISPER_WEBHOOK_SECRET", None)
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "webhook-secret"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the race is tested on both below
async def test_a_callback_with_no_configured_secret_is_accepted_and_signed_with_the_clusters_secret(
    settings: Settings, client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]], receiver: str
) -> None:
    created = await upload(client, callback_url=f"{receiver}/hook")  # 201: not refused for want of a secret
    await run_worker(FakeEngine(segment_seconds=11.0))

    async def arrived() -> dict[str, Any] | None:
        return Receiver.received[0] if Receiver.received else None

    request = await wait_for(arrived, timeout=30)
    secret = await webhook_secret_command(settings.resolved_database_url)
    check_webhook_secret(secret)  # a valid whsec_ secret of 32 bytes
    event = verify_webhook(request["body"], request["headers"], secret)
    assert event["type"] == "task.completed" and event["data"]["task_id"] == created["id"]
    with pytest.raises(WebhookVerificationError):
        verify_webhook(request["body"], request["headers"], WEBHOOK_SECRET)


@pytest.fixture
async def nodes(settings: Settings) -> AsyncIterator[list[async_sessionmaker[AsyncSession]]]:
    """Four nodes' connections to one database."""
    async with AsyncExitStack() as stack:
        made = []
        for _ in range(4):
            engine = create_engine(settings.resolved_database_url)
            stack.push_async_callback(engine.dispose)
            made.append(session_factory(engine))
        yield made


async def test_nodes_asking_at_once_get_one_secret(nodes: list[async_sessionmaker[AsyncSession]]) -> None:
    async def ask(sessions: async_sessionmaker[AsyncSession]) -> str:
        async with sessions() as session:
            return await cluster_settings.webhook_secret(session=session)

    secrets = await asyncio.gather(*(ask(sessions) for sessions in nodes))
    assert len(set(secrets)) == 1 and secrets[0].startswith("whsec_")
    assert await ask(nodes[0]) == secrets[0]  # kept

"""One outbound policy: every spelling of a non-public address is refused in file_url and callback_url at creation,
and the LLM endpoint passes the same check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.settings import Settings
from tests.conftest import app_client, complete_task
from tests.fake_llm import FakeLLM
from tests.media_server import Listener

# Request handling before and beside the queue: the database kind plays no part (tests/integration covers it).
pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

HOSTS = ["0177.0.0.1", "0x7f.0.0.1", "017700000001", "127.1", "127.0.1", "localhost.", "[64:ff9b::a9fe:a9fe]"]
HOSTS += ["１２７.０.０.２", "%31%32%37.0.0.2"]  # fullwidth digits and percent-encoding, as browsers decode them


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("field", ["file_url", "callback_url"])
async def test_non_public_spellings_are_refused_at_creation(client: httpx.AsyncClient, host: str, field: str) -> None:
    body = {"file_url": "https://example.com/a.mp3", field: f"http://{host}:8080/a"}
    response = await client.post("/v1/tasks", json=body)
    assert response.status_code == 422 and response.json()["type"].endswith("URLNotAllowed"), response.text
    assert "WHISPER_ALLOWED_HOSTS" in response.json()["detail"]
    assert (await client.get("/v1/tasks")).json()["total"] == 0


async def test_the_operators_llm_is_trusted_without_opening_its_host_to_tenants(
    make_settings: Callable[..., Settings],
    llm: str,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: Callable[..., Awaitable[Any]],
) -> None:
    """The configured LLM on loopback answers summaries with no allowlist entry, while a tenant's file_url and
    callback_url aimed at that same endpoint are still refused."""
    task = await task_factory(sessions)
    await complete_task(sessions, task.id)
    async with app_client(make_settings(llm_base_url=llm)) as client:
        assert (await client.post(f"/v1/tasks/{task.id}/summaries")).status_code == 201
        for field in ("file_url", "callback_url"):
            body = {"file_url": "https://example.com/a.mp3", field: f"{llm}/chat/completions"}
            refused = await client.post("/v1/tasks", json=body)
            assert refused.status_code == 422 and refused.json()["type"].endswith("URLNotAllowed"), refused.text
    assert len(FakeLLM.requests) == 1


async def test_an_llm_redirect_to_a_forbidden_address_is_not_followed(
    make_settings: Callable[..., Settings],
    llm: str,
    sessions: async_sessionmaker[AsyncSession],
    task_factory: Callable[..., Awaitable[Any]],
) -> None:
    """Checked at connect time too: the trusted LLM answers with a redirect to 127.0.0.2, which is never contacted."""
    task = await task_factory(sessions)
    await complete_task(sessions, task.id)
    forbidden = Listener()
    try:
        FakeLLM.mode = f"redirect:http://127.0.0.2:{forbidden.port}/v1/chat/completions"
        async with app_client(make_settings(llm_base_url=llm)) as client:
            refused = await client.post(f"/v1/tasks/{task.id}/summaries")
    finally:
        forbidden.close()
    assert refused.status_code == 422 and refused.json()["type"].endswith("URLNotAllowed"), refused.text
    assert "127.0.0.2" in refused.json()["detail"] and forbidden.accepted == 0

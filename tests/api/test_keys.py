"""API keys kept in the database: every API node honours them without a restart, within the key cache time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import create_engine, session_factory
from app.errors import InvalidInput, KeyNameTaken, KeyNotFound
from app.main import create_app
from app.services import api_keys
from app.settings import Settings
from tests.conftest import app_client, wait_for

CACHE_SECONDS = 0.5
URL_TASK = {"file_url": "https://example.com/talk.mp3"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(key_cache_seconds=CACHE_SECONDS)


async def create(sessions: async_sessionmaker[AsyncSession], name: str, *, admin: bool = False) -> str:
    async with sessions() as session:
        key, _ = await api_keys.create_key(session=session, name=name, admin=admin)
    return key


async def revoke(sessions: async_sessionmaker[AsyncSession], name: str) -> None:
    async with sessions() as session:
        await api_keys.revoke_key(session=session, name=name)


async def status_within(http: httpx.AsyncClient, headers: dict[str, str], status: int, seconds: float) -> None:
    """Wait until GET /v1/tasks answers `status`; fails past `seconds`."""

    async def answers() -> bool:
        return (await http.get("/v1/tasks", headers=headers)).status_code == status

    await wait_for(answers, timeout=seconds, interval=0.05)


async def test_two_nodes_honour_a_new_key_and_its_revocation_within_the_cache_time(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with app_client(settings) as node_a, app_client(settings) as node_b:
        for node in (node_a, node_b):  # no key anywhere, on loopback: open, as before
            assert (await node.get("/v1/tasks")).status_code == 200
            assert (await node.get("/v1/capabilities")).json()["auth_required"] is False
        key = await create(sessions, "alice")
        alice = {"Authorization": f"Bearer {key}"}
        for node in (node_a, node_b):  # made on the command line, honoured by both nodes without a restart
            # A key exists now: a request without one is refused, and the web page asks for one.
            await status_within(node, {}, 401, CACHE_SECONDS + 2)
            assert (await node.get("/v1/tasks", headers=alice)).status_code == 200
            missing = await node.get("/v1/tasks")
            assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
            assert "X-API-Key" in missing.json()["detail"] and "X-Token" in missing.json()["detail"]
            assert (await node.get("/v1/capabilities")).json()["auth_required"] is True
        created = await node_a.post("/v1/tasks", json=URL_TASK, headers=alice)
        assert created.status_code == 201
        assert (await node_b.get(f"/v1/tasks/{created.json()['id']}", headers=alice)).status_code == 200
        await revoke(sessions, "alice")
        for node in (node_a, node_b):
            await status_within(node, alice, 401, CACHE_SECONDS + 2)
        # Its tasks stay, owned by the name: a new key of that name is the same tenant.
        new_key = await create(sessions, "alice")
        again = {"X-API-Key": new_key}
        await status_within(node_b, again, 200, CACHE_SECONDS + 2)
        assert [t["id"] for t in (await node_b.get("/v1/tasks", headers=again)).json()["items"]] == [
            created.json()["id"]
        ]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # not database-sensitive
async def test_tenants_admin_headers_and_environment_keys_together(
    make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = make_settings(key_cache_seconds=0, api_keys=["carol:carol-secret-1"])
    bob, ops = await create(sessions, "bob"), await create(sessions, "ops", admin=True)
    async with app_client(settings) as http:
        by_header = [{"Authorization": f"Bearer {bob}"}, {"X-API-Key": bob}, {"X-Token": bob}]
        ids = []
        for headers in by_header:
            response = await http.post("/v1/tasks", json=URL_TASK, headers=headers)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        carol = {"X-Token": "carol-secret-1"}  # an environment key, in another header
        carols = (await http.post("/v1/tasks", json=URL_TASK, headers=carol)).json()["id"]
        listed = {t["id"] for t in (await http.get("/v1/tasks", headers={"X-Token": bob})).json()["items"]}
        assert listed == set(ids)  # the key's name is its tenant
        assert (await http.get(f"/v1/tasks/{carols}", headers={"X-API-Key": bob})).status_code == 404
        everything = (await http.get("/v1/tasks", headers={"X-API-Key": ops})).json()["items"]
        assert {t["id"] for t in everything} == {*ids, carols}  # --admin sees every tenant
        wrong = await http.get("/v1/tasks", headers={"X-Token": "wsk_not-a-key-at-all"})
        assert wrong.status_code == 401 and "sent in X-Token" in wrong.json()["detail"]
        # The OpenAI routes take the same headers and answer in OpenAI's shape.
        assert (await http.get("/v1/models", headers={"X-Token": bob})).status_code == 200
        refused = await http.get("/v1/models", headers={"X-API-Key": "wsk_not-a-key-at-all"})
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
        assert "X-API-Key" in refused.json()["error"]["message"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # not database-sensitive
async def test_failed_keys_in_any_header_count_against_the_address(
    make_settings: Callable[..., Settings], sessions: async_sessionmaker[AsyncSession]
) -> None:
    key = await create(sessions, "alice")
    app = create_app(make_settings(auth_failures_per_minute=3))
    transport = httpx.ASGITransport(app=app, client=("10.0.0.9", 40000))
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for headers in ({"X-Token": "guess-0001"}, {"X-API-Key": "guess-0002"}, {"X-Token": "guess-0003"}):
            assert (await http.get("/v1/tasks", headers=headers)).status_code == 401
        blocked = await http.get("/v1/tasks", headers={"X-Token": key})  # not even a right key is compared
        assert blocked.status_code == 429 and "failed authentications" in blocked.json()["detail"]


async def test_names_are_unique_valid_and_not_those_of_environment_keys(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await create(sessions, "alice")
    async with sessions() as session:
        with pytest.raises(KeyNameTaken, match="exists already"):
            await api_keys.create_key(session=session, name="alice", admin=False)
        with pytest.raises(KeyNameTaken, match="from the environment"):
            await api_keys.create_key(session=session, name="carol", admin=False, environment_names=["carol"])
        for bad in ("", "a b", "bob:x", "-bob", "x" * 65, "名字"):
            with pytest.raises(InvalidInput):
                await api_keys.create_key(session=session, name=bad, admin=False)
        with pytest.raises(KeyNotFound):
            await api_keys.revoke_key(session=session, name="nobody")
        key, stored = await api_keys.create_key(session=session, name="admin-ops", admin=False)
        assert stored.admin  # a name starting with admin is an admin key, as in WHISPER_API_KEYS
        listed = await api_keys.list_keys(session=session)
    assert [(k.name, k.admin) for k in listed] == [("admin-ops", True), ("alice", False)]
    assert key.startswith("wsk_") and len(key) == 47


async def test_last_use_is_recorded_without_a_write_per_request(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = await create(sessions, "alice")
    async with app_client(settings) as http:
        assert (await http.get("/v1/tasks", headers={"X-Token": key})).status_code == 200
        monkeypatch.setattr(api_keys, "USE_WRITE_SECONDS", 0.0)  # written with the next cache refresh

        async def recorded() -> bool:
            await http.get("/v1/tasks", headers={"X-Token": key})
            async with sessions() as session:
                [alice] = await api_keys.list_keys(session=session)
            return alice.last_used_at is not None

        await wait_for(recorded, timeout=CACHE_SECONDS + 5)


@pytest.fixture
async def engines(settings: Settings) -> AsyncIterator[list[async_sessionmaker[AsyncSession]]]:
    """Four nodes' connections to one database."""
    async with AsyncExitStack() as stack:
        made = []
        for _ in range(4):
            engine = create_engine(settings.resolved_database_url)
            stack.push_async_callback(engine.dispose)
            made.append(session_factory(engine))
        yield made


async def first_admin(sessions: async_sessionmaker[AsyncSession]) -> str | None:
    async with sessions() as session:
        return await api_keys.create_first_admin_key(session=session)


async def test_nodes_starting_together_make_one_first_admin_key(
    engines: list[async_sessionmaker[AsyncSession]],
) -> None:
    made = [key for key in await asyncio.gather(*(first_admin(s) for s in engines)) if key]
    assert len(made) == 1
    async with engines[0]() as session:
        assert [(k.name, k.admin) for k in await api_keys.list_keys(session=session)] == [("admin", True)]
        await api_keys.revoke_key(session=session, name="admin")
    # Once per database: revoking it does not make another one at the next start.
    assert await first_admin(engines[1]) is None


async def test_no_first_admin_key_where_keys_were_made(engines: list[async_sessionmaker[AsyncSession]]) -> None:
    await create(engines[0], "alice")
    await revoke(engines[0], "alice")
    assert await first_admin(engines[1]) is None

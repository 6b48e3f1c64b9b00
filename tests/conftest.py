"""Fixtures shared by every test layer."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import create_engine, session_factory
from app.db.migrate import upgrade_to_head
from app.db.models import Task
from app.db.types import utcnow
from app.main import create_app
from app.schemas.transcript import Transcript
from app.services import queue
from app.services.queue import Lease
from app.settings import Settings
from tests.fake_llm import FakeLLM
from tests.media_server import MediaHandler
from workers.engine import FasterWhisperEngine, TranscriptionEngine
from workers.models import ModelPool, PoolConfig
from workers.worker import Worker


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of assembled bundled models for the whole run."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def make_settings(tmp_path: Path, model_cache: Path, db_url: str) -> Callable[..., Settings]:
    """Settings on a fresh database, SQLite and MariaDB in turn; keyword arguments override."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path,
            "model_cache_dir": model_cache,
            "database_url": db_url,
            "poll_seconds": 0.05,
            "lease_seconds": 10.0,
            "heartbeat_seconds": 2.0,
            "shutdown_grace_seconds": 5.0,
            "device": "cpu",
            "webhook_secret": WEBHOOK_SECRET,
            "webhook_retry_schedule": [0.3, 0.3, 0.3],
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Default test settings."""
    return make_settings()


@pytest.fixture
async def sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a migrated database."""
    engine = create_engine(settings.resolved_database_url)
    await upgrade_to_head(engine)
    yield session_factory(engine)
    await engine.dispose()


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking in-process to an app built from `settings`, with the app's lifespan running."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http,
    ):
        yield http


@pytest.fixture
async def client(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process (the app's lifespan runs)."""
    async with app_client(settings) as http:
        yield http


async def wait_for(predicate: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last value {value!r})")
        await asyncio.sleep(interval)


# Property tests judge results, not speed: no per-example deadline (the default 200 ms failed on a loaded machine).
hypothesis.settings.register_profile("whisper", deadline=None)
hypothesis.settings.load_profile("whisper")

WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"test-webhook-secret-32-bytes-long").decode()
# A user with a password (created by .ci/mariadb.sh), as in every real deployment: a URL that loses its password on the
# way to the driver cannot pass.
MARIADB_URL = os.environ.get("WHISPER_TEST_MYSQL_URL", "mysql+asyncmy://whisper:ws-test-p%40ss@127.0.0.1:3306/test")


@asynccontextmanager
async def fresh_mariadb() -> AsyncIterator[str]:
    """A new, migrated MariaDB database, dropped afterwards. Fails (never skips) if MariaDB is not running."""
    name = f"ws_test_{uuid.uuid4().hex[:12]}"
    server = create_engine(MARIADB_URL)
    async with server.begin() as conn:
        await conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    url = make_url(MARIADB_URL).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    await upgrade_to_head(engine)
    await engine.dispose()
    try:
        yield url
    finally:
        async with server.begin() as conn:
            await conn.exec_driver_sql(f"DROP DATABASE {name}")
        await server.dispose()


POSTGRES_URL = os.environ.get(
    "WHISPER_TEST_POSTGRES_URL", "postgresql+asyncpg://whisper:ws-test-p%40ss@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated PostgreSQL database that tests copy (CREATE DATABASE ... TEMPLATE: far faster than migrating each
    time); one per test process, since a template must have no other session while it is copied."""
    name = f"ws_test_template_{os.getpid()}"

    async def create() -> None:
        server = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        async with server.connect() as conn:
            await conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await conn.exec_driver_sql(f"CREATE DATABASE {name}")
        await server.dispose()
        engine = create_engine(make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False))
        await upgrade_to_head(engine)
        await engine.dispose()

    async def drop() -> None:
        server = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        async with server.connect() as conn:
            await conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await server.dispose()

    # In a thread of its own: the first test that needs it asks from inside its running event loop.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, create()).result()
        yield name
        thread.submit(asyncio.run, drop()).result()


@asynccontextmanager
async def fresh_postgres(template: str) -> AsyncIterator[str]:
    """A new, migrated PostgreSQL database, dropped afterwards. Fails (never skips) if PostgreSQL is not running."""
    name = f"ws_test_{uuid.uuid4().hex[:12]}"
    server = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    async with server.connect() as conn:
        await conn.exec_driver_sql(f"CREATE DATABASE {name} TEMPLATE {template}")
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with server.connect() as conn:
            await conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        await server.dispose()


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database of each kind."""
    if request.param == "mariadb":
        async with fresh_mariadb() as url:
            yield url
        return
    if request.param == "postgresql":
        async with fresh_postgres(request.getfixturevalue("postgres_template")) as url:
            yield url
        return
    yield await migrated_sqlite(tmp_path)


async def migrated_sqlite(folder: Path) -> str:
    """A new SQLite database in `folder`, at the head revision."""
    url = f"sqlite+aiosqlite:///{folder / 'queue.db'}"
    engine = create_engine(url)
    await upgrade_to_head(engine)
    await engine.dispose()
    return url


@pytest.fixture
async def mariadb_url() -> AsyncIterator[str]:
    """A fresh, migrated MariaDB database (for MariaDB-only fault tests)."""
    async with fresh_mariadb() as url:
        yield url


@pytest.fixture(params=["mariadb", "postgresql"])
async def server_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh, migrated database on each database server (for what SQLite's single file cannot show: several
    nodes, connections that drop)."""
    if request.param == "mariadb":
        async with fresh_mariadb() as url:
            yield url
        return
    async with fresh_postgres(request.getfixturevalue("postgres_template")) as url:
        yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on each kind of database."""
    engine = create_engine(db_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def task_factory() -> Callable[..., Awaitable[Task]]:
    """Insert a queued task directly (no media), with overridable fields."""

    async def make(sessions: async_sessionmaker[AsyncSession], **overrides: Any) -> Task:
        now = utcnow()
        values: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "owner": "",
            "task_type": "transcribe",
            "status": "queued",
            "priority": 1,
            "model": "base",
            "language": None,
            "options": {},
            "source": "upload",
            "progress": 0,
            "attempts": 0,
            "max_attempts": 3,
            "run_at": now,
            "cancel_requested": False,
            "created_at": now,
        }
        values.update(overrides)
        async with sessions() as session:
            task = Task(**values)
            session.add(task)
            await session.commit()
            return task

    return make


async def complete_task(
    sessions: async_sessionmaker[AsyncSession], task_id: str, transcript: Transcript | None = None
) -> None:
    """Claim and complete a queued task as a worker would (its webhook event, if any, stays undelivered)."""
    async with sessions() as session:
        [claimed] = await queue.claim(session=session, worker_id="w", lease_seconds=30)
        assert claimed.id == task_id and claimed.lease_token
    async with sessions() as session:
        await queue.complete(
            session=session,
            lease=Lease(task_id, claimed.lease_token),
            processing_seconds=1,
            transcript=transcript
            or Transcript(text="x", language="en", language_probability=1.0, duration=1.0, segments=[]),
            callback_url=claimed.callback_url,
            keep_seconds=claimed.delete_after_seconds,
        )


@pytest.fixture
async def run_worker(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Start in-process workers over the test database; all are stopped at teardown."""
    stops: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    async def start(engine: TranscriptionEngine, **overrides: Any) -> Worker:
        worker = Worker(sessions=sessions, engine=engine, settings=settings.model_copy(update=overrides))
        stop = asyncio.Event()
        stops.append((stop, asyncio.create_task(worker.run(stop))))
        return worker

    yield start
    for stop, task in stops:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


@pytest.fixture(scope="session")
def real_engine(model_cache: Path) -> FasterWhisperEngine:
    """faster-whisper with the bundled models, shared by every test that needs the real model; windows of tasks
    running at once share batches, as by default."""
    return FasterWhisperEngine(ModelPool(PoolConfig(cache_dir=model_cache, device="cpu")), batch_size=8, batching=True)


@pytest.fixture
def media_server() -> Iterator[str]:
    """Base URL of a loopback HTTP server (see tests/media_server.py)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), MediaHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def llm() -> Iterator[str]:
    """Base URL (`.../v1`) of a fake OpenAI-compatible LLM on loopback (see tests/fake_llm.py)."""
    FakeLLM.requests, FakeLLM.mode = [], "ok"
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`-m model` / `-m "not model"` must split the suite truthfully: a test that takes the real engine is marked."""
    unmarked = [
        item.nodeid
        for item in items
        if "real_engine" in getattr(item, "fixturenames", ()) and item.get_closest_marker("model") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"these tests load the real model but lack @pytest.mark.model: {unmarked}")

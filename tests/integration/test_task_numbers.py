"""Task numbers on SQLite and MariaDB: given by the database in order, unique across API nodes creating at once,
never reused after a delete, and given to existing tasks by migration 0009 in order of creation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import column, insert, select, table
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.engine import create_engine, session_factory
from app.db.migrate import alembic_config, upgrade_to_head
from app.db.models import TASKS, Task, take_numbers
from app.db.types import utcnow
from app.schemas.tasks import TaskCreate
from app.services import tasks as task_service
from app.services.admission import admit
from app.settings import Settings
from tests.conftest import MARIADB_URL, POSTGRES_URL

Sessions = async_sessionmaker[AsyncSession]
Factory = Callable[..., Awaitable[Task]]


async def numbers(db: Sessions) -> list[tuple[str, int]]:
    async with db() as session:
        return [(row.id, row.number) for row in await session.scalars(select(Task).order_by(Task.number))]


async def test_numbers_follow_creation_and_are_never_reused(db: Sessions, task_factory: Factory) -> None:
    first, second, third = [await task_factory(db) for _ in range(3)]
    assert [n for _, n in await numbers(db)] == [first.number, second.number, third.number]
    assert first.number >= 1 and second.number == first.number + 1 and third.number == second.number + 1
    async with db() as session:
        await task_service.delete_task(session=session, task_id=third.id, owner=None)
    fourth = await task_factory(db)
    assert fourth.number == third.number + 1  # the deleted task's number is not given again
    async with db() as session:
        found = await task_service.get_task_by_number(session=session, number=second.number, owner=None)
        assert found.id == second.id


async def test_concurrent_creation_on_two_nodes_gives_distinct_numbers(db_url: str, settings: Settings) -> None:
    """Two engines (two API nodes' connection pools), 40 creations at once through the task service."""
    engines = [create_engine(db_url), create_engine(db_url)]
    nodes = [session_factory(engine) for engine in engines]
    admission = admit(TaskCreate(file_url="https://example.com/a.wav"), owner="", settings=settings)

    async def create(index: int) -> int:
        async with nodes[index % 2]() as session:
            creation = await task_service.create_task(session=session, admission=admission, settings=settings)
            return creation.task.number

    try:
        given = await asyncio.gather(*(create(i) for i in range(40)))
        assert len(set(given)) == 40
        assert sorted(given) == list(range(min(given), min(given) + 40))  # no gaps: nothing was rolled back
        stored = await numbers(nodes[0])
        assert sorted(n for _, n in stored) == sorted(given)
    finally:
        for engine in engines:
            await engine.dispose()


async def test_bulk_inserts_take_numbers_in_order(db: Sessions, task_factory: Factory) -> None:
    first = await task_factory(db)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with db() as session:
        connection = await session.connection()
        given = await connection.run_sync(take_numbers, ids)
        await session.commit()
    assert [given[task_id] for task_id in ids] == [first.number + 1, first.number + 2, first.number + 3]
    assert (await task_factory(db)).number == first.number + 4


@pytest.fixture(params=["sqlite", "mariadb", "postgresql"])
async def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of each kind with no schema at all."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    name = f"ws_test_{uuid.uuid4().hex[:12]}"
    admin_url = MARIADB_URL if request.param == "mariadb" else POSTGRES_URL
    server = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with server.connect() as conn:
        await conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with server.connect() as conn:
            await conn.exec_driver_sql(f"DROP DATABASE {name}")
        await server.dispose()


async def test_migration_numbers_existing_tasks_in_order_of_creation(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url)

    def to_0008(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0008")

    try:
        async with engine.begin() as connection:
            await connection.run_sync(to_0008)
        now = utcnow()
        ages = [30, 10, 50, 20, 40]  # seconds ago, inserted out of order
        ids = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(len(ages))]
        columns = ["id", "owner", "task_type", "status", "priority", "model", "options", "source", "progress"]
        columns += ["attempts", "max_attempts", "run_at", "cancel_requested", "created_at"]
        tasks = table("tasks", *[column(name, TASKS.c[name].type) for name in columns])  # the 0008 columns
        async with engine.begin() as connection:
            for task_id, age in zip(ids, ages, strict=True):
                created = now - timedelta(seconds=age)
                await connection.execute(
                    insert(tasks).values(
                        id=task_id,
                        owner="",
                        task_type="transcribe",
                        status="completed",
                        priority=1,
                        model="base",
                        options={},
                        source="upload",
                        progress=100,
                        attempts=1,
                        max_attempts=3,
                        run_at=created,
                        cancel_requested=False,
                        created_at=created,
                    )
                )
        await upgrade_to_head(engine)
        db = session_factory(engine)
        oldest_first = [ids[i] for i in sorted(range(len(ages)), key=lambda i: -ages[i])]
        assert await numbers(db) == [(task_id, n) for n, task_id in enumerate(oldest_first, 1)]
        async with db() as session:
            new = Task(
                id=str(uuid.uuid4()),
                task_type="transcribe",
                status="queued",
                priority=1,
                model="base",
                options={},
                source="upload",
                max_attempts=3,
                run_at=now,
            )
            session.add(new)
            await session.commit()
        assert new.number > len(ages)  # MariaDB may skip a few after the migration's INSERT ... SELECT
    finally:
        await engine.dispose()

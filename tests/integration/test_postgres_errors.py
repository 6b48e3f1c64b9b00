"""PostgreSQL's passing errors, provoked for real on the server, are classified transient and retried; a lasting
one is not. (The MySQL codes are covered in test_retry.py; connections killed under load in test_queue_faults.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.db.engine import IDLE_TRANSACTION_SECONDS, create_engine, session_factory
from app.db.retry import is_transient, retrying
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    async with engine.begin() as conn:
        await conn.exec_driver_sql("CREATE TABLE pair (id int PRIMARY KEY, n int NOT NULL)")
        await conn.exec_driver_sql("INSERT INTO pair VALUES (1, 0), (2, 0)")
    yield engine
    await engine.dispose()


async def sqlstate(error: DBAPIError) -> str:
    return str(getattr(error.orig, "sqlstate", ""))


async def test_a_deadlock_is_transient(engine: AsyncEngine) -> None:
    """Two transactions lock the same two rows in opposite orders: the server aborts one with 40P01."""
    locked = asyncio.Barrier(2)

    async def cross(conn: AsyncConnection, first: int, second: int) -> None:
        async with conn.begin():
            await conn.execute(text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": first})
            await locked.wait()
            await conn.execute(text("UPDATE pair SET n = n + 1 WHERE id = :id"), {"id": second})

    async with engine.connect() as a, engine.connect() as b:
        results = await asyncio.gather(cross(a, 1, 2), cross(b, 2, 1), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], DBAPIError), results
    assert await sqlstate(errors[0]) == "40P01"
    assert is_transient(errors[0])


async def test_a_serialization_failure_is_transient(engine: AsyncEngine) -> None:
    """Two SERIALIZABLE transactions read what the other writes: one fails with 40001."""
    read = asyncio.Barrier(2)

    async def skew(conn: AsyncConnection, mine: int, other: int) -> None:
        await conn.exec_driver_sql("BEGIN ISOLATION LEVEL SERIALIZABLE")
        await conn.execute(text("SELECT n FROM pair WHERE id = :id"), {"id": other})
        await read.wait()
        await conn.execute(text("UPDATE pair SET n = 1 WHERE id = :id"), {"id": mine})
        await conn.exec_driver_sql("COMMIT")

    a_engine = create_engine(engine.url.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    try:
        async with a_engine.connect() as a, a_engine.connect() as b:
            results = await asyncio.gather(skew(a, 1, 2), skew(b, 2, 1), return_exceptions=True)
    finally:
        await a_engine.dispose()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], DBAPIError), results
    assert await sqlstate(errors[0]) == "40001"
    assert is_transient(errors[0])


async def test_a_terminated_connection_is_retried_on_a_new_one(engine: AsyncEngine) -> None:
    """An administrator (or a failover) ends the backend mid-transaction: the retry runs again and succeeds."""
    sessions = session_factory(engine)
    attempts: list[int] = []

    async def work(attempt: int) -> int:
        attempts.append(attempt)
        async with session.begin():
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            if attempt == 0:
                async with engine.connect() as admin:
                    await admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            return int((await session.execute(text("SELECT count(*) FROM pair"))).scalar_one())

    async with sessions() as session:
        assert await retrying(session, work) == 2
    assert attempts == [0, 1]


async def test_a_lasting_error_is_not_retried(engine: AsyncEngine) -> None:
    sessions = session_factory(engine)
    attempts: list[int] = []

    async def broken(attempt: int) -> None:
        attempts.append(attempt)
        async with session.begin():
            await session.execute(text("INSERT INTO pair VALUES (1, 0)"))  # duplicate key: 23505

    async with sessions() as session:
        with pytest.raises(DBAPIError) as raised:
            await retrying(session, broken)
    assert attempts == [0] and await sqlstate(raised.value) == "23505"


async def test_the_server_ends_transactions_a_frozen_process_left_open(engine: AsyncEngine) -> None:
    """As on MariaDB: a frozen worker must not keep row locks that every `SKIP LOCKED` reader would pass by."""
    async with engine.connect() as conn:
        timeout = (await conn.exec_driver_sql("SHOW idle_in_transaction_session_timeout")).scalar()
    assert timeout == f"{IDLE_TRANSACTION_SECONDS}s"


async def test_a_user_with_a_password_connects(db_url: str) -> None:
    url = make_url(POSTGRES_URL)
    assert url.password, "the tests must connect as a user with a password"
    engine = create_engine(url.render_as_string(hide_password=False))
    try:
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT current_user")).scalar() == url.username
    finally:
        await engine.dispose()


async def test_libpq_sslmode_in_the_url_reaches_the_driver(db_url: str) -> None:
    """Managed PostgreSQL providers hand out URLs with `?sslmode=`; asyncpg calls it `ssl`."""
    is_tls = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
    plain = create_engine(f"{db_url}?sslmode=disable")
    try:
        async with plain.connect() as conn:
            assert (
                await conn.exec_driver_sql("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).scalar() is False
    finally:
        await plain.dispose()
    secure = create_engine(f"{db_url}?sslmode=require")
    try:
        async with secure.connect() as conn:  # a server with TLS on
            assert (await conn.exec_driver_sql(is_tls)).scalar()
    except DBAPIError as exc:  # a server with TLS off refuses the upgrade: the option reached the driver
        assert "SSL" in str(exc), exc
    finally:
        await secure.dispose()

"""Database URLs reach the driver whole: a password survives the engine's URL rewriting."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from app.db.engine import IDLE_TRANSACTION_SECONDS, create_engine
from tests.conftest import MARIADB_URL


async def test_mariadb_user_with_a_password_connects() -> None:
    url = make_url(MARIADB_URL)
    assert url.password, "the tests must connect as a user with a password"
    assert "charset" not in url.query  # the engine adds charset=utf8mb4 itself: the rewritten URL is what connects
    engine = create_engine(url.render_as_string(hide_password=False))
    try:
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("SELECT CURRENT_USER()")).scalar() == f"{url.username}@{url.host}"
            charset = (await conn.exec_driver_sql("SELECT @@character_set_client")).scalar()
        assert charset == "utf8mb4"
    finally:
        await engine.dispose()


async def test_mariadb_ends_transactions_a_frozen_process_left_open() -> None:
    """A worker frozen inside a transaction (SIGSTOP, a paused VM) must not hold its row locks for ever: `SKIP LOCKED`
    claimers and reapers would pass its task by until it woke (tests/e2e/test_queue_faults.py freezes one)."""
    engine = create_engine(MARIADB_URL)
    try:
        async with engine.connect() as conn:
            timeout = (await conn.exec_driver_sql("SELECT @@SESSION.idle_transaction_timeout")).scalar()
        assert timeout == IDLE_TRANSACTION_SECONDS
    finally:
        await engine.dispose()

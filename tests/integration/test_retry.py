"""Transient database errors are retried inside the queue layer; others are not."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.retry import is_transient, retrying


class DriverError(Exception):
    """Stands in for a driver exception carrying a MySQL error code."""


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (OperationalError("UPDATE", {}, DriverError(1213, "Deadlock found when trying to get lock")), True),
        (OperationalError("UPDATE", {}, DriverError(1205, "Lock wait timeout exceeded")), True),
        (OperationalError("SELECT", {}, DriverError(2013, "Lost connection to MySQL server during query")), True),
        (OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked")), True),
        (IntegrityError("INSERT", {}, DriverError(1062, "Duplicate entry")), False),
        (OperationalError("SELECT", {}, DriverError(1054, "Unknown column")), False),
        (ValueError("not a database error"), False),
    ],
)
def test_which_errors_are_transient(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


async def test_retrying_runs_again_after_transient_errors(sessions: async_sessionmaker[AsyncSession]) -> None:
    attempts: list[int] = []

    async def flaky(attempt: int) -> str:
        attempts.append(attempt)
        if attempt < 2:
            raise OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
        return "done"

    async with sessions() as session:
        assert await retrying(session, flaky) == "done"
    assert attempts == [0, 1, 2]


async def test_retrying_gives_up_on_other_errors(sessions: async_sessionmaker[AsyncSession]) -> None:
    attempts: list[int] = []

    async def broken(attempt: int) -> None:
        attempts.append(attempt)
        raise IntegrityError("INSERT", {}, DriverError(1062, "Duplicate entry"))

    async with sessions() as session:
        with pytest.raises(IntegrityError):
            await retrying(session, broken)
    assert attempts == [0]

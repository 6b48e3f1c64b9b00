"""Retrying transactions that failed for a passing reason: deadlock, serialization failure, lock wait, SQLITE_BUSY,
a dropped connection, a server shutting down."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

# 1205 lock wait timeout, 1213 deadlock, 1927 connection killed (MariaDB), 2003 can't connect, 2006 server gone away,
# 2013 lost connection during query, 4031 disconnected by the server (MySQL 8).
TRANSIENT_MYSQL_CODES = frozenset({1205, 1213, 1927, 2003, 2006, 2013, 4031})
# PostgreSQL SQLSTATEs: serialization failure, deadlock, lock not available, idle transaction ended by the server,
# admin/crash shutdown, server starting up, too many connections; and every connection exception (class 08).
TRANSIENT_POSTGRES_STATES = frozenset({"40001", "40P01", "55P03", "25P03", "57P01", "57P02", "57P03", "53300"})
ATTEMPTS = 8
BASE_DELAY_SECONDS = 0.05


def is_transient(exc: BaseException) -> bool:
    """Whether running the same transaction again may succeed."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None)
    if isinstance(state, str) and (state in TRANSIENT_POSTGRES_STATES or state.startswith("08")):
        return True
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in TRANSIENT_MYSQL_CODES:
        return True
    message = str(exc.orig).lower()
    return "database is locked" in message or "database table is locked" in message


async def retrying(session: AsyncSession, operation: Callable[[int], Awaitable[T]]) -> T:
    """Run `operation(attempt)` (one transaction on `session`), again after a transient failure, with backoff."""
    for attempt in range(ATTEMPTS):
        try:
            return await operation(attempt)
        except DBAPIError as exc:
            if not is_transient(exc) or attempt == ATTEMPTS - 1:
                raise
            log.warning("transient database error (attempt %d of %d): %s", attempt + 1, ATTEMPTS, exc.orig)
            try:
                await session.rollback()
            except DBAPIError:
                await session.invalidate()
            await asyncio.sleep(BASE_DELAY_SECONDS * 2**attempt * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


def retry_transient(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate a function that runs one transaction on its keyword argument `session`."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        session = kwargs["session"]
        assert isinstance(session, AsyncSession)
        return await retrying(session, lambda _attempt: fn(*args, **kwargs))

    return wrapper

"""Async engine and session factory for SQLite (WAL, BEGIN IMMEDIATE), MySQL/MariaDB and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 30_000
IDLE_TRANSACTION_SECONDS = 30
"""MariaDB and PostgreSQL end a session whose transaction sat idle this long: a frozen process (SIGSTOP, a paused VM)
must not keep row locks that every `SKIP LOCKED` reader would then skip for ever. Ours never idle more than
milliseconds."""


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Build the engine for `url`; SQLite gets WAL and write-locking transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # Only its owner may enter: the database holds every tenant's transcripts and the webhook secret.
            Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "mysql":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_recycle", 3600)
        kwargs.setdefault("isolation_level", "READ COMMITTED")
        if "charset" not in parsed.query:
            # Not str(): it renders the password as `***`.
            url = parsed.update_query_dict({"charset": "utf8mb4"}).render_as_string(hide_password=False)
        engine = create_async_engine(url, **kwargs)
        _configure_mysql(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_recycle", 3600)
        kwargs.setdefault("isolation_level", "READ COMMITTED")
        settings = {"idle_in_transaction_session_timeout": str(IDLE_TRANSACTION_SECONDS * 1000)}
        connect: dict[str, Any] = {"server_settings": settings}
        if "sslmode" in parsed.query:  # libpq's name, as managed providers write it; asyncpg's is `ssl`
            connect["ssl"] = parsed.query["sslmode"]
            url = parsed.difference_update_query(["sslmode"]).render_as_string(hide_password=False)
        engine = create_async_engine(url, connect_args=connect, **kwargs)
        _configure_postgresql(engine)
        return engine
    return create_async_engine(url, **kwargs)


def _configure_postgresql(engine: AsyncEngine) -> None:
    """asyncpg lets a refused or timed-out connection escape as a bare OSError; raise it as the driver error every
    other database failure is (SQLSTATE 08001, as libpq reports it), so that the retry layer retries it and the API
    answers 503 rather than 500 while the server is down."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        dbapi = dialect.loaded_dbapi
        try:
            return dbapi.connect(*cargs, **cparams)
        except OSError as exc:  # ConnectionRefusedError, TimeoutError, socket.gaierror, ...
            raise dbapi.OperationalError(f"cannot connect to PostgreSQL: {exc}", _CannotConnect()) from exc


class _CannotConnect:
    """What a driver error carries for a connection that could not be made."""

    sqlstate = "08001"


def _configure_mysql(engine: AsyncEngine) -> None:
    """On MariaDB, end transactions left idle (MySQL has no such setting: there a frozen holder keeps its locks)."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT VERSION()")
        if "mariadb" in str(cursor.fetchone()[0]).lower():
            cursor.execute(f"SET SESSION idle_transaction_timeout = {IDLE_TRANSACTION_SECONDS}")
        cursor.close()


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL for concurrent readers; every transaction takes the write lock up front (BEGIN IMMEDIATE).

    A deferred transaction that later writes can fail with SQLITE_BUSY at once, without waiting out the busy
    timeout; taking the lock at BEGIN makes concurrent writers queue up instead.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let us emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)

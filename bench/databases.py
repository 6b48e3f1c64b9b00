"""Databases for the benchmarks: a fresh migrated one of each kind, and the faults a fleet's database meets
(connections killed by an administrator, a full server restart)."""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db.engine import create_engine
from app.db.migrate import upgrade_to_head

KINDS = ("sqlite", "mariadb", "postgresql")
SERVER_URLS = {
    "mariadb": "mysql+asyncmy://root@127.0.0.1:3306/test",
    "postgresql": "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
}
"""Administrator URLs of this machine's servers (see .ci/mariadb.sh and .ci/postgresql.sh)."""
CI = Path(__file__).resolve().parents[1] / ".ci"


async def fresh_database(kind: str, server_url: str | None = None) -> str:
    """A new database at the head revision: a file in a temporary folder, or a database on the server."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-')}/whisper.db"
    else:
        admin = server_url or SERVER_URLS[kind]
        name = f"ws_bench_{uuid.uuid4().hex[:8]}"
        server = create_engine(admin, isolation_level="AUTOCOMMIT")
        async with server.connect() as conn:
            await conn.exec_driver_sql(f"CREATE DATABASE {name}")
        await server.dispose()
        url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    await upgrade_to_head(engine)
    await engine.dispose()
    return url


async def drop_database(url: str, server_url: str | None = None) -> None:
    """Remove a database `fresh_database` made on a server (SQLite files stay in their temporary folder)."""
    kind = kind_of(url)
    if kind == "sqlite":
        return
    server = create_engine(server_url or SERVER_URLS[kind], isolation_level="AUTOCOMMIT")
    force = " WITH (FORCE)" if kind == "postgresql" else ""
    async with server.connect() as conn:
        await conn.exec_driver_sql(f"DROP DATABASE {make_url(url).database}{force}")
    await server.dispose()


def kind_of(url: str) -> str:
    """sqlite, mariadb or postgresql."""
    backend = make_url(url).get_backend_name()
    return {"mysql": "mariadb"}.get(backend, backend)


async def kill_other_connections(conn: AsyncConnection, database: str) -> int:
    """End every other session on `database` as an administrator would (MariaDB KILL; PostgreSQL
    pg_terminate_backend, which the backend sees as 57P01 admin shutdown); how many were ended."""
    if conn.dialect.name == "postgresql":
        ended = await conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": database},
        )
        return int(ended.scalar_one())
    kills = 0
    own = (await conn.exec_driver_sql("SELECT CONNECTION_ID()")).scalar()
    sessions: list[Any] = list((await conn.exec_driver_sql("SHOW PROCESSLIST")).all())
    for session_id, _user, _host, db, *_ in sessions:
        if db == database and session_id != own:
            try:
                await conn.exec_driver_sql(f"KILL {int(session_id)}")
                kills += 1
            except OperationalError as exc:  # 1094: that connection ended on its own meanwhile
                if getattr(exc.orig, "args", (None,))[:1] != (1094,):
                    raise
    return kills


def stop_server(kind: str) -> None:
    """Stop this machine's MariaDB or PostgreSQL server (fast: open transactions are rolled back)."""
    if kind == "mariadb":
        subprocess.run(["mariadb-admin", "-h", "127.0.0.1", "-u", "root", "shutdown"], check=True)
    else:
        version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast"], check=True
        )


def start_server(kind: str) -> None:
    """Start it again (the CI scripts start a server when its port is closed, and wait until it answers)."""
    subprocess.run(["bash", str(CI / f"{kind}.sh")], check=True, stdout=subprocess.DEVNULL)


async def restart_server(kind: str, *, down_seconds: float) -> None:
    """A full server restart with `down_seconds` of outage between stop and start."""
    await asyncio.to_thread(stop_server, kind)
    await asyncio.sleep(down_seconds)
    await asyncio.to_thread(start_server, kind)

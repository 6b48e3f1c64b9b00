"""Migrations reach head and match the ORM models, on SQLite and MariaDB."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from app.db.engine import create_engine
from app.db.migrate import alembic_config, is_at_head


async def test_schema_is_at_head_and_matches_the_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        assert await is_at_head(engine)

        def check(connection: Connection) -> list[str]:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.check(config)  # raises if autogenerate would find any difference
            return sorted(inspect(connection).get_table_names())

        async with engine.connect() as connection:
            tables = await connection.run_sync(check)
        assert tables == [
            "alembic_version",
            "api_keys",
            "chores",
            "cluster_settings",
            "media_chunks",
            "task_deletions",
            "task_numbers",
            "task_partials",
            "task_results",
            "task_summaries",
            "tasks",
            "webhook_attempts",
            "webhook_outbox",
            "workers",
        ]
    finally:
        await engine.dispose()

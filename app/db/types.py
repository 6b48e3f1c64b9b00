"""Column types that mean the same on SQLite and MySQL/MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, LargeBinary, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """The current time in UTC, aware."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC with microseconds (DATETIME(6) on MySQL); returns aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
"""Text without MySQL's 64 KiB TEXT limit."""

LongJSON = JSON().with_variant(mysql.JSON(), "mysql", "mariadb")
"""JSON document (LONGTEXT on MariaDB)."""

Blob = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")
"""Binary chunk up to 16 MiB on MySQL."""

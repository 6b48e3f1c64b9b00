"""task numbers, callback payload choice, compatibility metadata

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "task_numbers",
        sa.Column("number", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_task_numbers")),
        sa.UniqueConstraint("task_id", name="uq_task_numbers_task_id"),
        sqlite_autoincrement=True,
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    # SQLite adds a NOT NULL column only with a default; every insert sets the number (app/db/models.py), and the
    # default is dropped where the database can (MySQL/MariaDB).
    op.add_column("tasks", sa.Column("number", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("tasks", sa.Column("callback_payload", sa.String(length=16), nullable=True))
    op.add_column(
        "tasks",
        sa.Column(
            "compat_meta",
            sa.JSON().with_variant(mysql.JSON(), "mariadb").with_variant(mysql.JSON(), "mysql"),
            nullable=True,
        ),
    )
    # Existing tasks are numbered in order of creation.
    op.execute("INSERT INTO task_numbers (task_id) SELECT id FROM tasks ORDER BY created_at, id")
    op.execute("UPDATE tasks SET number = (SELECT n.number FROM task_numbers n WHERE n.task_id = tasks.id)")
    if op.get_bind().dialect.name == "mysql":
        op.alter_column("tasks", "number", existing_type=sa.BigInteger(), existing_nullable=False, server_default=None)
    op.create_index("ix_tasks_number", "tasks", ["number"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_tasks_number", table_name="tasks")
    op.drop_column("tasks", "compat_meta")
    op.drop_column("tasks", "callback_payload")
    op.drop_column("tasks", "number")
    op.drop_table("task_numbers")

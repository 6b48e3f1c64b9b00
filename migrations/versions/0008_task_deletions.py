"""task deletions for event streams

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 03:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.types import UTCDateTime

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'task_deletions',
        sa.Column('task_id', sa.String(length=36), nullable=False),
        sa.Column('owner', sa.String(length=64), nullable=False),
        sa.Column('deleted_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('task_id'),
        mysql_charset='utf8mb4',
        mysql_collate='utf8mb4_bin',
    )
    op.create_index('ix_task_deletions_owner', 'task_deletions', ['owner', 'deleted_at'], unique=False)
    op.create_index('ix_task_deletions_at', 'task_deletions', ['deleted_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_task_deletions_at', table_name='task_deletions')
    op.drop_index('ix_task_deletions_owner', table_name='task_deletions')
    op.drop_table('task_deletions')

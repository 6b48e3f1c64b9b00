"""content hash for deduplication

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 04:18:01.367184
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('content_hash', sa.String(length=64), nullable=True))
    op.add_column('tasks', sa.Column('reused_from', sa.String(length=36), nullable=True))
    op.create_index('ix_tasks_owner_content', 'tasks', ['owner', 'content_hash'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tasks_owner_content', table_name='tasks')
    op.drop_column('tasks', 'reused_from')
    op.drop_column('tasks', 'content_hash')

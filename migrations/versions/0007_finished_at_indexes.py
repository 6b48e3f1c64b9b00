"""finished_at indexes for event streams

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 02:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_tasks_owner_finished', 'tasks', ['owner', 'finished_at'], unique=False)
    op.create_index('ix_tasks_finished', 'tasks', ['finished_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tasks_finished', table_name='tasks')
    op.drop_index('ix_tasks_owner_finished', table_name='tasks')

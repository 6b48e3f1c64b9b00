"""retention: when each finished task is deleted, and the chore row one worker at a time holds to delete them

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.types import UTCDateTime

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('delete_after_seconds', sa.Integer(), nullable=True))
    op.add_column('tasks', sa.Column('delete_at', UTCDateTime(), nullable=True))
    op.create_index('ix_tasks_delete_at', 'tasks', ['delete_at', 'finished_at'], unique=False)
    chores = op.create_table(
        'chores',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=255), nullable=True),
        sa.Column('expires_at', UTCDateTime(), nullable=True),
        sa.Column('done', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_chores')),
        mysql_charset='utf8mb4',
        mysql_collate='utf8mb4_bin',
    )
    # The row exists from the start, so taking a turn is one conditional UPDATE (no insert race between workers).
    op.bulk_insert(chores, [{'name': 'retention', 'holder': None, 'expires_at': None, 'done': 0}])


def downgrade() -> None:
    op.drop_table('chores')
    op.drop_index('ix_tasks_delete_at', table_name='tasks')
    op.drop_column('tasks', 'delete_at')
    op.drop_column('tasks', 'delete_after_seconds')

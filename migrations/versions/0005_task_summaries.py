"""task summaries, per-task callback secrets

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 03:53:03.886436
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from app.db.types import UTCDateTime
from sqlalchemy.dialects import mysql
revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('tasks', sa.Column('callback_secret', sa.String(length=255), nullable=True))
    op.create_table('task_summaries',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('prompt', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=True),
    sa.Column('output_language', sa.String(length=64), nullable=True),
    sa.Column('text', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=True),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('llm_calls', sa.Integer(), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=True),
    sa.Column('completion_tokens', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_task_summaries_task_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_summaries')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_index('ix_task_summaries_task', 'task_summaries', ['task_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_task_summaries_task', table_name='task_summaries')
    op.drop_table('task_summaries')
    op.drop_column('tasks', 'callback_secret')

"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 00:55:15.446963
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from app.db.types import UTCDateTime

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tasks',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('owner', sa.String(length=64), nullable=False),
    sa.Column('task_type', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('model', sa.String(length=255), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('options', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_url', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=True),
    sa.Column('source_meta', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=True),
    sa.Column('media_duration', sa.Double(), nullable=True),
    sa.Column('media_bytes', sa.Integer(), nullable=True),
    sa.Column('progress', sa.SmallInteger(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('run_at', UTCDateTime(), nullable=False),
    sa.Column('lease_token', sa.String(length=36), nullable=True),
    sa.Column('lease_owner', sa.String(length=255), nullable=True),
    sa.Column('lease_expires_at', UTCDateTime(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('callback_url', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=True),
    sa.Column('error_type', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('started_at', UTCDateTime(), nullable=True),
    sa.Column('finished_at', UTCDateTime(), nullable=True),
    sa.Column('processing_seconds', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('owner', 'idempotency_key', name='uq_tasks_owner_idempotency_key'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    )
    op.create_index('ix_tasks_claim', 'tasks', ['status', 'priority', 'run_at', 'id'], unique=False)
    op.create_index('ix_tasks_created', 'tasks', ['created_at', 'id'], unique=False)
    op.create_index('ix_tasks_lease', 'tasks', ['status', 'lease_expires_at'], unique=False)
    op.create_index('ix_tasks_owner_created', 'tasks', ['owner', 'created_at', 'id'], unique=False)
    op.create_table('media_chunks',
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), 'mariadb').with_variant(mysql.MEDIUMBLOB(), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_media_chunks_task_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('task_id', 'seq', name=op.f('pk_media_chunks')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    )
    op.create_table('task_results',
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('text', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('language_probability', sa.Double(), nullable=True),
    sa.Column('duration', sa.Double(), nullable=False),
    sa.Column('segments', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_task_results_task_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('task_id', name=op.f('pk_task_results')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    )


def downgrade() -> None:
    op.drop_table('task_results')
    op.drop_table('media_chunks')
    op.drop_index('ix_tasks_owner_created', table_name='tasks')
    op.drop_index('ix_tasks_lease', table_name='tasks')
    op.drop_index('ix_tasks_created', table_name='tasks')
    op.drop_index('ix_tasks_claim', table_name='tasks')
    op.drop_table('tasks')

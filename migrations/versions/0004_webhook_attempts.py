"""webhook attempts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 02:42:13.517906
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from app.db.types import UTCDateTime
from sqlalchemy.dialects import mysql
revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('webhook_attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('at', UTCDateTime(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('latency_ms', sa.Double(), nullable=False),
    sa.Column('error', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=True),
    sa.Column('response_excerpt', sa.Text().with_variant(mysql.LONGTEXT(), 'mariadb').with_variant(mysql.LONGTEXT(), 'mysql'), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['webhook_outbox.id'], name=op.f('fk_webhook_attempts_event_id_webhook_outbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_attempts')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )
    op.create_index('ix_webhook_attempts_event', 'webhook_attempts', ['event_id', 'attempt'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_webhook_attempts_event', table_name='webhook_attempts')
    op.drop_table('webhook_attempts')

"""API keys in the database, and cluster-wide settings (the generated webhook secret)

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db.types import UTCDateTime

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'api_keys',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('admin', sa.Boolean(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('last_used_at', UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_api_keys')),
        sa.UniqueConstraint('key_hash', name='uq_api_keys_key_hash'),
        mysql_charset='utf8mb4',
        mysql_collate='utf8mb4_bin',
    )
    op.create_table(
        'cluster_settings',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.String(length=255), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_cluster_settings')),
        mysql_charset='utf8mb4',
        mysql_collate='utf8mb4_bin',
    )


def downgrade() -> None:
    op.drop_table('cluster_settings')
    op.drop_table('api_keys')

"""task partials

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 02:20:29.275046
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql
revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('task_partials',
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('segment', sa.JSON().with_variant(mysql.JSON(), 'mariadb').with_variant(mysql.JSON(), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_task_partials_task_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('task_id', 'seq', name=op.f('pk_task_partials')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin'
    )


def downgrade() -> None:
    op.drop_table('task_partials')

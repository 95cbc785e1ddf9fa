"""task executions: one row per worker task (how long it took, how it ended), for /metrics

Revision ID: 0005_task_executions
Revises: 0004_sweep_tags
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005_task_executions'
down_revision: str | None = '0004_sweep_tags'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('task_executions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('task', sa.String(length=200), nullable=False),
    sa.Column('celery_task_id', sa.String(length=200), nullable=True),
    sa.Column('worker', sa.String(length=200), nullable=True),
    sa.Column('runs', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_s', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_executions'))
    )
    with op.batch_alter_table('task_executions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_executions_finished_at'), ['finished_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('task_executions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_executions_finished_at'))
    op.drop_table('task_executions')

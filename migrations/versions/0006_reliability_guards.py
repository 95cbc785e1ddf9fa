"""runs.width as a 64-bit integer (w = floor(d^gamma_w) may exceed 2^31); runs.queued_at, when the run's task
was last sent (the reaper re-sends a queued run whose message was lost); runs.dedup_key, unique among reusable
runs (one request, one run). Existing runs get no dedup_key: duplicates made before stay, none is added.

Revision ID: 0006_reliability_guards
Revises: 0005_task_executions
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_reliability_guards'
down_revision: str | None = '0005_task_executions'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the reusable statuses as of this revision (models.tables.REUSABLE), fixed here as the migration is
REUSABLE_SQL = "status IN ('queued', 'running', 'succeeded', 'diverged')"


def upgrade() -> None:
    # batch mode: SQLite rebuilds the table (its INTEGER is 64-bit already), PostgreSQL alters in place
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.alter_column('width', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)
        batch_op.add_column(sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('dedup_key', sa.String(length=64), nullable=True))
        batch_op.create_index('uq_runs_dedup_key_reusable', ['dedup_key'], unique=True,
                              postgresql_where=sa.text(REUSABLE_SQL), sqlite_where=sa.text(REUSABLE_SQL))


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index('uq_runs_dedup_key_reusable')
        batch_op.drop_column('dedup_key')
        batch_op.drop_column('queued_at')
        batch_op.alter_column('width', existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)

"""sweeps.refine, refine_round, refine_points, refine_state: the state of a sweep's adaptive refinement (its
request, the rounds started, the points per round, refining/done/cancelled). Existing sweeps have none.

Revision ID: 0007_refine_sweep_refinement
Revises: 0006_reliability_guards
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007_refine_sweep_refinement'
down_revision: str | None = '0006_reliability_guards'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refine', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('refine_round', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('refine_points', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('refine_state', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_column('refine_state')
        batch_op.drop_column('refine_points')
        batch_op.drop_column('refine_round')
        batch_op.drop_column('refine')

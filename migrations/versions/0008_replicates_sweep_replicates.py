"""sweeps.replicates: the axes of a sweep that are replicates (averaged over in its phase diagrams). Existing
sweeps get their seed and task_seed axes, the default for a sweep that does not name its replicates.

Revision ID: 0008_replicates_sweep_replicates
Revises: 0007_refine_sweep_refinement
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008_replicates_sweep_replicates'
down_revision: str | None = '0007_refine_sweep_refinement'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the default replicate axes as of this revision (service.grid.REPLICATE_FIELDS), fixed here as the migration is
REPLICATE_FIELDS = ('task_seed', 'seed')


def upgrade() -> None:
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replicates', sa.JSON(), nullable=True))
    sweeps = sa.table('sweeps', sa.column('id', sa.Uuid()), sa.column('axes', sa.JSON()),
                      sa.column('replicates', sa.JSON()))
    bind = op.get_bind()
    for sweep_id, axes in bind.execute(sa.select(sweeps.c.id, sweeps.c.axes)).all():
        replicates = [a for a in (axes or {}) if a in REPLICATE_FIELDS]
        bind.execute(sa.update(sweeps).where(sweeps.c.id == sweep_id).values(replicates=replicates))


def downgrade() -> None:
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_column('replicates')

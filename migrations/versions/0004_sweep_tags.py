"""sweep tags: free key/value labels of a sweep, set at submission, to find sweeps by (as run_tags for runs)

Revision ID: 0004_sweep_tags
Revises: 0003_reliability
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004_sweep_tags'
down_revision: str | None = '0003_reliability'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sweep_tags',
    sa.Column('sweep_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_sweep_tags_sweep_id_sweeps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('sweep_id', 'key', name=op.f('pk_sweep_tags'))
    )
    with op.batch_alter_table('sweep_tags', schema=None) as batch_op:
        batch_op.create_index('ix_sweep_tags_key_value', ['key', 'value'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sweep_tags', schema=None) as batch_op:
        batch_op.drop_index('ix_sweep_tags_key_value')
    op.drop_table('sweep_tags')

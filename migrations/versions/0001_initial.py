"""initial schema: sweeps, runs, summaries, trajectory points

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('sweeps',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('base_request', sa.JSON(), nullable=False),
    sa.Column('axes', sa.JSON(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps'))
    )
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sweeps_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sweeps_name'), ['name'], unique=False)

    op.create_table('runs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('sweep_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('cache_key', sa.String(length=64), nullable=False),
    sa.Column('d', sa.Integer(), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('gamma_sigma2', sa.Double(), nullable=False),
    sa.Column('gamma_w', sa.Double(), nullable=False),
    sa.Column('sigma2', sa.Double(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('dynamics', sa.String(length=64), nullable=False),
    sa.Column('backend_requested', sa.String(length=16), nullable=False),
    sa.Column('regime', sa.String(length=16), nullable=False),
    sa.Column('theory_applies', sa.Boolean(), nullable=False),
    sa.Column('underparametrised', sa.Boolean(), nullable=False),
    sa.Column('progress_step', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=False),
    sa.Column('lr', sa.Double(), nullable=True),
    sa.Column('threshold', sa.Double(), nullable=True),
    sa.Column('backend', sa.String(length=16), nullable=True),
    sa.Column('device', sa.String(length=200), nullable=True),
    sa.Column('timings', sa.JSON(), nullable=True),
    sa.Column('max_distance', sa.Double(), nullable=True),
    sa.Column('log_max_distance', sa.Double(), nullable=True),
    sa.Column('has_comparison', sa.Boolean(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['sweep_id'], ['sweeps.id'], name=op.f('fk_runs_sweep_id_sweeps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_cache_key'), ['cache_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_d'), ['d'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_gamma_sigma2'), ['gamma_sigma2'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_gamma_w'), ['gamma_w'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_rank'), ['rank'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_regime'), ['regime'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_sigma2'), ['sigma2'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_sweep_id'), ['sweep_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_width'), ['width'], unique=False)

    op.create_table('run_summaries',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('dynamics', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('min_test_error', sa.Double(), nullable=True),
    sa.Column('min_test_error_step', sa.Integer(), nullable=False),
    sa.Column('stable_rank_at_min', sa.Double(), nullable=True),
    sa.Column('rank_at_min', sa.Integer(), nullable=False),
    sa.Column('final_train_error', sa.Double(), nullable=True),
    sa.Column('final_test_error', sa.Double(), nullable=True),
    sa.Column('steps_run', sa.Integer(), nullable=False),
    sa.Column('stop_reason', sa.String(length=32), nullable=False),
    sa.Column('diverged_step', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_summaries_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'dynamics', name=op.f('pk_run_summaries'))
    )
    with op.batch_alter_table('run_summaries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_summaries_min_test_error'), ['min_test_error'], unique=False)

    op.create_table('trajectory_points',
    sa.Column('run_id', sa.Uuid(), nullable=False),
    sa.Column('dynamics', sa.String(length=32), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('recorded', sa.Boolean(), nullable=False),
    sa.Column('train_error', sa.Double(), nullable=True),
    sa.Column('test_error', sa.Double(), nullable=True),
    sa.Column('stable_rank', sa.Double(), nullable=True),
    sa.Column('rank', sa.Double(), nullable=True),
    sa.Column('gap_ratio', sa.Double(), nullable=True),
    sa.Column('n_above_threshold', sa.Double(), nullable=True),
    sa.Column('spectrum', sa.LargeBinary(), nullable=True),
    sa.Column('distance', sa.Double(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_trajectory_points_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'dynamics', 'step', name=op.f('pk_trajectory_points'))
    )


def downgrade() -> None:
    op.drop_table('trajectory_points')
    with op.batch_alter_table('run_summaries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_summaries_min_test_error'))

    op.drop_table('run_summaries')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_width'))
        batch_op.drop_index(batch_op.f('ix_runs_sweep_id'))
        batch_op.drop_index(batch_op.f('ix_runs_status'))
        batch_op.drop_index(batch_op.f('ix_runs_sigma2'))
        batch_op.drop_index(batch_op.f('ix_runs_regime'))
        batch_op.drop_index(batch_op.f('ix_runs_rank'))
        batch_op.drop_index(batch_op.f('ix_runs_gamma_w'))
        batch_op.drop_index(batch_op.f('ix_runs_gamma_sigma2'))
        batch_op.drop_index(batch_op.f('ix_runs_d'))
        batch_op.drop_index(batch_op.f('ix_runs_created_at'))
        batch_op.drop_index(batch_op.f('ix_runs_cache_key'))

    op.drop_table('runs')
    with op.batch_alter_table('sweeps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sweeps_name'))
        batch_op.drop_index(batch_op.f('ix_sweeps_created_at'))

    op.drop_table('sweeps')

"""an index per sorted summary metric on run_summaries (dynamics, metric, run_id): a page of runs sorted on a
summary metric walks the index (models/queries.py), so its plan does not depend on the planner's statistics
(116k runs took 12.9 s before an ANALYZE, issue #13; bench/metric_sort.py).

Revision ID: 0009_reliability_metric_sort
Revises: 0008_replicates_sweep_replicates
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0009_reliability_metric_sort'
down_revision: str | None = '0008_replicates_sweep_replicates'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the sorted summary metrics as of this revision (models.tables.SORTED_SUMMARY_METRICS), fixed here
METRICS = ('min_test_error', 'min_test_error_step', 'stable_rank_at_min', 'rank_at_min', 'final_train_error',
           'final_test_error', 'steps_run')


def upgrade() -> None:
    with op.batch_alter_table('run_summaries', schema=None) as batch_op:
        for metric in METRICS:
            batch_op.create_index(f'ix_run_summaries_sort_{metric}', ['dynamics', metric, 'run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('run_summaries', schema=None) as batch_op:
        for metric in METRICS:
            batch_op.drop_index(f'ix_run_summaries_sort_{metric}')

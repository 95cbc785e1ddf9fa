"""Runs sorted on a summary metric (models/queries.py ``page``): the pages, by cursor and by offset, are the
order (value is null, value, id) of an independent sort in Python, on SQLite and PostgreSQL, with ties, runs
without a value and runs of another dynamics; on PostgreSQL the page is read along the index of migration 0007
(EXPLAIN), with no statistics gathered (issue #13: 12.9 s over 116k runs before an ANALYZE)."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
from sqlalchemy import inspect, text

from core import get_sessionmaker, session_scope
from dynamics import SimulationRequest
from models import Run, RunStatus, RunSummary
from models.queries import RunQuery, filtered, index_order, page
from models.runs import new_run
from models.tables import SORTED_SUMMARY_METRICS

RUNS = 60


def _summary(run_id: uuid.UUID, dynamics: str, rng: random.Random) -> RunSummary:
    none_or = (lambda v: None if rng.random() < 0.15 else v)  # noqa: E731
    return RunSummary(run_id=run_id, dynamics=dynamics, position=0,
                      min_test_error=none_or(rng.choice([0.5, 0.25, rng.random()])),  # ties
                      min_test_error_step=rng.randint(0, 3), stable_rank_at_min=none_or(rng.random()),
                      rank_at_min=rng.randint(0, 2), final_train_error=none_or(rng.random()),
                      final_test_error=none_or(rng.random()), steps_run=rng.randint(0, 4), stop_reason="max_steps")


@pytest.fixture
def stored(db_url: str) -> tuple[Any, dict[uuid.UUID, dict[str, Any]]]:
    """RUNS runs: most ran gd (a summary, some values null), some are queued (no summary), some ran lazy only."""
    factory = get_sessionmaker(db_url)
    rng = random.Random(7)
    values: dict[uuid.UUID, dict[str, Any]] = {}
    with session_scope(factory) as s:
        for i in range(RUNS):
            kind = rng.choice(["gd", "gd", "gd", "queued", "lazy"])
            req = SimulationRequest(d=6, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, steps=3, seed=i,
                                    dynamics=["lazy"] if kind == "lazy" else ["gd"])
            run = new_run(req)
            s.add(run)
            s.flush()
            if kind == "queued":
                values[run.id] = dict.fromkeys(SORTED_SUMMARY_METRICS)
                continue
            run.status = RunStatus.succeeded
            summary = _summary(run.id, "lazy" if kind == "lazy" else "gd", rng)
            s.add(summary)
            if kind == "gd":
                values[run.id] = {m: getattr(summary, m) for m in SORTED_SUMMARY_METRICS}
    return factory, values


def _expected(values: dict[uuid.UUID, dict[str, Any]], metric: str, descending: bool) -> list[uuid.UUID]:
    with_value = sorted((v[metric], rid) for rid, v in values.items() if v[metric] is not None)
    without = sorted(rid for rid, v in values.items() if v[metric] is None)
    if descending:
        with_value.reverse()
        without.reverse()
    return [rid for _, rid in with_value] + without


@pytest.mark.parametrize("metric", ["min_test_error", "steps_run", "final_test_error"])
@pytest.mark.parametrize("descending", [False, True])
def test_pages_on_a_summary_metric_are_the_independent_order(
    stored: tuple[Any, dict[uuid.UUID, dict[str, Any]]], metric: str, descending: bool
) -> None:
    factory, values = stored
    q = RunQuery(dynamics="gd", sort=("-" if descending else "") + metric)
    expected = _expected(values, metric, descending)
    assert any(values[r][metric] is None for r in expected) and len(expected) > 14
    with factory() as s:
        got: list[uuid.UUID] = []
        cursor = None
        while True:  # by cursor
            rows, cursor = page(s, q, limit=7, cursor=cursor)
            got += [r.id for r in rows]
            if cursor is None:
                break
        assert got == expected
        for offset in range(0, len(expected) + 3, 5):  # by offset, across the end of the runs with a value
            rows, _ = page(s, q, limit=5, offset=offset)
            assert [r.id for r in rows] == expected[offset : offset + 5], offset


@pytest.mark.postgres
def test_the_sort_walks_the_index_without_statistics(postgres_url: str) -> None:
    import migrations

    migrations.upgrade(postgres_url)
    factory = get_sessionmaker(postgres_url)
    with factory() as s:
        indexes = {ix["name"]: ix["column_names"] for ix in inspect(s.get_bind()).get_indexes("run_summaries")}
        for metric in SORTED_SUMMARY_METRICS:
            assert indexes[f"ix_run_summaries_sort_{metric}"] == ["dynamics", metric, "run_id"]
    rng = random.Random(1)
    with session_scope(factory) as s:  # enough rows that a sort of them all costs more than the walk
        s.execute(text("ALTER TABLE runs SET (autovacuum_enabled = off)"))
        s.execute(text("ALTER TABLE run_summaries SET (autovacuum_enabled = off)"))
        req = SimulationRequest(d=6, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, steps=3)
        for _ in range(2000):
            run = new_run(req)
            run.status = RunStatus.succeeded
            s.add(run)
            s.flush()
            s.add(_summary(run.id, "gd", rng))
    with factory() as s:
        for sort in ("min_test_error", "-stable_rank_at_min"):
            q = RunQuery(dynamics="gd", sort=sort)
            metric = q.sort_key
            col = getattr(RunSummary, metric)
            stmt = filtered(q, summarised=True).where(col.is_not(None))
            stmt = stmt.order_by(col.desc() if q.descending else col, RunSummary.run_id.desc() if q.descending
                                 else RunSummary.run_id).limit(51)
            sql = str(stmt.compile(s.get_bind(), compile_kwargs={"literal_binds": True}))
            with index_order(s):
                plan = "\n".join(s.execute(text("EXPLAIN " + sql)).scalars())
            assert f"ix_run_summaries_sort_{metric}" in plan, plan
            assert "Sort" not in plan.split("\n")[1], plan  # the index gives the order: nothing sorted
            rows, _ = page(s, q, limit=50)
            assert len(rows) == 50

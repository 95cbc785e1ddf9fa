"""The runs list reads a NOT NULL sort column's index in order (no sort of every matching run): the query
plans of a page, on SQLite (deterministic without statistics; PostgreSQL's plan depends on the table's
size, and is shown by bench/dashboard.py's numbers instead). Paging itself is tested in
tests/service/test_run_filters.py on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.orm import Session

import migrations
from core import make_engine
from dynamics import SimulationRequest
from models import Run, RunSummary, queries
from models.runs import run_row
from tests.conftest import sqlite_url


@pytest.mark.parametrize(("sort", "index"), [("-created_at", "ix_runs_created_at"), ("gamma_w", "ix_runs_gamma_w"),
                                             ("-d", "ix_runs_d"), ("min_test_error", "ix_run_summaries_sort_min_test_error"),
                                             ("-min_test_error", "ix_run_summaries_sort_min_test_error")])
def test_a_page_reads_the_sort_columns_index_in_order(tmp_path: Path, sort: str, index: str) -> None:
    """A summary metric's pages read the runs with a value along the metric's index (an inner join), then
    those without (here: a page of runs without a GD summary needs that second query)."""
    url = sqlite_url(tmp_path)
    migrations.upgrade(url)
    engine = make_engine(url)
    statements: list[tuple[str, Any]] = []
    try:
        with Session(engine) as session:
            rows = [run_row(SimulationRequest(d=10 + i % 3, rank=2, gamma_sigma2=-1.5, gamma_w=1.5 + (i % 4) / 10,
                                              steps=10, seed=i)) for i in range(12)]  # fmt: skip
            session.execute(insert(Run), rows)
            session.execute(insert(RunSummary), [  # GD summaries for 8 of the 12 runs
                {"run_id": r["id"], "dynamics": "gd", "position": 0, "min_test_error": 1 / (1 + i % 5),
                 "min_test_error_step": i, "stable_rank_at_min": 1.0, "rank_at_min": 1, "final_train_error": 0.1,
                 "final_test_error": 0.2, "steps_run": 10, "stop_reason": "max_steps"}
                for i, r in enumerate(rows[:8])])  # fmt: skip
            session.commit()
            event.listen(engine, "before_cursor_execute", lambda *a: statements.append((a[2], a[3])))
            q = queries.RunQuery(sort=sort, dynamics="gd" if "min_test_error" in sort else None)
            first, cursor = queries.page(session, q, limit=5)
            second, _ = queries.page(session, q, limit=5, cursor=cursor)
            assert len(first) == 5 and len(second) == 5 and not {r.id for r in first} & {r.id for r in second}
            pages = [(s, p) for s, p in statements if "ORDER BY" in s and "LIMIT" in s]
            if "min_test_error" in sort:  # page 1: 5 valued; page 2: 3 valued and the first 2 without a value
                pages = [pages[0], pages[1]]
                assert len(statements) >= 3 and "IS NULL" in [s for s, _ in statements if "LIMIT" in s][2]
            assert len(pages) == 2
            for statement, params in pages:
                plan = [r[-1] for r in session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)]
                assert any(f"USING INDEX {index}" in step or f"USING COVERING INDEX {index}" in step for step in plan), plan
                # at most the ties on the key are sorted (by id), never every row
                assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan
    finally:
        engine.dispose()


"""The sweep table's fast loading path (models.sweeps.sweep_table_runs: plain columns, the axes read from the
runs' indexed columns) gives the same table as the ORM path it replaced (sweep_runs: whole Run objects, the
axes read from each request's JSON), on SQLite and PostgreSQL: finished, diverged, queued and failed runs,
non-finite summaries, axes with and without an indexed column, linspace values that are not short decimals."""

from __future__ import annotations

import itertools
import random
import uuid
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from core import make_engine
from dynamics import SimulationRequest
from models import Run, RunStatus
from models.sweeps import create_sweep, sweep_runs, sweep_table_runs
from models.tables import RunSummary
from service.exports import Export, _json_chunks
from service.grid import table

DYNAMICS = ["gd", "self_consistent"]
#: (axes, base): two indexed axes (the phase diagram's), and two without an indexed column (seed, noise_std)
#: beside one with (width)
CASES = {
    "indexed": ({"gamma_sigma2": [float(v) for v in np.linspace(-2.2, -0.8, 7)],
                 "gamma_w": [float(v) for v in np.linspace(1.5, 2.5, 5)]}, {"d": 20, "rank": 2}),
    "request-only": ({"seed": [3, 1, 2], "noise_std": [0.1, 0.2 + 0.1], "width": [40, 50]},
                     {"d": 20, "rank": 2, "gamma_sigma2": -1.5}),
}  # fmt: skip


def _fill(session: Session, axes: dict[str, list[Any]], base: dict[str, Any]) -> tuple[uuid.UUID, dict[uuid.UUID, str]]:
    """A sweep whose runs are, in turn: succeeded (with summaries, some non-finite), diverged (no
    comparison), queued (no summaries), failed; the sweep's id and each run's status."""
    rng = random.Random(1)
    names = list(axes)
    requests = [SimulationRequest.model_validate({**base, "steps": 50, "dynamics": DYNAMICS, **dict(zip(names, p))})
                for p in itertools.product(*axes.values())]  # fmt: skip
    sweep, ids = create_sweep(session, name="t", base_request=base, axes=axes, requests=requests)
    statuses = {}
    for i, run_id in enumerate(ids):
        status = [RunStatus.succeeded, RunStatus.diverged, RunStatus.queued, RunStatus.failed][i % 4]
        statuses[run_id] = status.value
        if status in (RunStatus.queued, RunStatus.failed):
            session.execute(update(Run).where(Run.id == run_id).values(status=status))
            continue
        for j, name in enumerate(DYNAMICS):
            session.execute(insert(RunSummary), [{
                "run_id": run_id, "dynamics": name, "position": j,
                "min_test_error": [rng.random(), float("nan"), float("inf")][i % 3], "min_test_error_step": i,
                "stable_rank_at_min": 1 + rng.random(), "rank_at_min": j + 1, "final_train_error": rng.random(),
                "final_test_error": None if i % 5 == 0 else rng.random(), "steps_run": 50, "stop_reason": "max_steps",
                "diverged_step": 7 if status is RunStatus.diverged else None}])  # fmt: skip
        compared = status is RunStatus.succeeded
        session.execute(update(Run).where(Run.id == run_id).values(
            status=status, has_comparison=compared, log_max_distance=-3.0 - i if compared else None))  # fmt: skip
    session.commit()
    return sweep.id, statuses


@pytest.mark.parametrize("case", list(CASES))
def test_the_fast_path_gives_the_same_table_as_the_orm_path(db_url: str, case: str) -> None:
    axes, base = CASES[case]
    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            sweep_id, statuses = _fill(session, axes, base)
        with Session(engine) as session:
            before = table(axes, sweep_runs(session, sweep_id))
        with Session(engine) as session:
            after = table(axes, sweep_table_runs(session, sweep_id, list(axes)))
    finally:
        engine.dispose()
    assert after == before  # the columns (values and their Python types' equality) and the Parquet types
    columns, _ = after
    assert [type(v) for c in axes for v in columns[c]] == [type(v) for c in axes for v in before[0][c]]
    # the bytes served (GET /v1/sweeps/{id}/table) are the same too
    served = [b"".join(_json_chunks(Export.of_columns(*t, "t"))) for t in (before, after)]
    assert served[1] == served[0]
    # and the table is right, not just unchanged: grid order, every run once, its status, nulls where unknown
    assert list(zip(*(columns[a] for a in axes))) == list(itertools.product(*axes.values()))
    assert sorted(columns["run_id"]) == sorted(str(r) for r in statuses)
    assert [statuses[uuid.UUID(r)] for r in columns["run_id"]] == columns["status"]
    for i, status in enumerate(columns["status"]):
        finished = status in ("succeeded", "diverged")
        assert (columns["gd.rank_at_min"][i] == 1) is finished
        assert (columns["self_consistent.rank_at_min"][i] == 2) is finished
        assert (columns["log_max_distance"][i] is not None) is (status == "succeeded")
    assert None in columns["gd.min_test_error"]  # NaN and inf are served as null

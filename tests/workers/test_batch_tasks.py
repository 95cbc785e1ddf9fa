"""The simulate_batch_runs task (a chunk of a sweep's runs as one stacked batch), called in this process with
real dynamics, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from core import Settings, get_sessionmaker, session_scope
from core.jobs import SIMULATE_BATCH_TASK
from dynamics import SimulationRequest, simulate
from models.results import trajectory_columns
from models.runs import cancel_run, claim_runs
from tests.workers.stored import get_run, queued_runs, stored_run
from workers.celery_app import celery_app
from workers.tasks import BatchProgressWriter, RunCancelled, batch_step, execute_batch, simulate_batch_runs

POINTS = [
    SimulationRequest.model_validate({"d": 12, "rank": 3, "gamma_sigma2": g, "gamma_w": w, "seed": s, "steps": st,
                                      "stopping": "paper", "dynamics": ["gd", "self_consistent"]})
    for g, w, s, st in [(-1.8, 2.0, 0, 40), (-1.2, 2.2, 1, 30), (-1.5, 1.9, 2, 40), (-2.0, 2.1, 3, 25)]
]


@pytest.fixture
def settings(db_url: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(data_dir=tmp_path, database_url=db_url, progress_interval_s=0)


def test_each_run_stores_what_dynamics_returns_for_it_alone(settings: Settings) -> None:
    ids = queued_runs(settings, POINTS)
    outcome = execute_batch(ids, settings)
    assert outcome == {str(i): "succeeded" for i in ids}
    for run_id, request in zip(ids, POINTS, strict=True):
        expected = simulate(request)
        run = stored_run(settings, run_id)
        assert run.status == "succeeded" and run.attempts == 1 and run.error is None
        assert run.timings is not None and run.timings["batch_size"] == len(POINTS)
        assert run.progress_step == max(s.steps_run for s in expected.summaries.values())
        for summary in run.summaries:
            want = expected.summaries[summary.dynamics]
            assert summary.steps_run == want.steps_run and summary.stop_reason == want.stop_reason
            assert summary.min_test_error == pytest.approx(want.min_test_error, rel=1e-9)
        assert expected.comparison is not None
        assert run.log_max_distance == pytest.approx(expected.comparison.log_max_distance, rel=1e-9)
        with get_sessionmaker(settings.db_url)() as s:
            got = trajectory_columns(s, get_run(s, run_id))
        want_cols = expected.trajectory_columns()
        assert got["step"] == want_cols["step"] and got["dynamics"] == want_cols["dynamics"]
        assert got["test_error"] == pytest.approx(want_cols["test_error"], rel=1e-9)
    # delivered again: nothing runs
    assert set(execute_batch(ids, settings).values()) == {"skipped"}


def test_cancelled_and_invalid_runs_are_left_out(settings: Settings) -> None:
    ids = queued_runs(settings, POINTS[:3])
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        cancel_run(s, get_run(s, ids[0]))
        get_run(s, ids[1]).request = {**POINTS[1].normalized(), "rank": 99}  # no longer valid
    outcome = execute_batch(ids, settings)
    assert outcome == {str(ids[0]): "skipped", str(ids[1]): "failed", str(ids[2]): "succeeded"}
    assert "rank" in (stored_run(settings, ids[1]).error or "")
    assert stored_run(settings, ids[0]).status == "cancelled" and stored_run(settings, ids[0]).summaries == []


def test_progress_of_a_batch_and_cancelling_it(settings: Settings) -> None:
    ids = queued_runs(settings, POINTS[:2])  # 40 and 30 steps
    factory = get_sessionmaker(settings.db_url)
    with session_scope(factory) as s:
        claim_runs(s, ids)
    progress = BatchProgressWriter(settings, ids, [40, 30])
    progress(35 + 30, 70)  # step 35: the first run at 35, the second done
    assert [stored_run(settings, i).progress_step for i in ids] == [35, 30]
    with session_scope(factory) as s:
        cancel_run(s, get_run(s, ids[1]))
    progress(36 + 30, 70)  # one still running: the batch goes on
    assert stored_run(settings, ids[0]).progress_step == 36 and stored_run(settings, ids[1]).progress_step == 30
    with session_scope(factory) as s:
        cancel_run(s, get_run(s, ids[0]))
    with pytest.raises(RunCancelled):  # none running: the batch stops
        progress(37 + 30, 70)


def test_a_run_cancelled_during_the_batch_keeps_no_result(settings: Settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ids = queued_runs(settings, POINTS[:2])
    factory = get_sessionmaker(settings.db_url)
    calls: list[int] = []

    def cancel_first(self: BatchProgressWriter, step: int, total: int) -> bool:
        if not calls:
            with session_scope(factory) as s:
                cancel_run(s, get_run(s, ids[0]))
        calls.append(step)
        return original(self, step, total)

    original = BatchProgressWriter.write
    monkeypatch.setattr(BatchProgressWriter, "write", cancel_first)
    assert execute_batch(ids, settings) == {str(ids[0]): "cancelled", str(ids[1]): "succeeded"}
    assert calls and stored_run(settings, ids[0]).summaries == [] and stored_run(settings, ids[0]).status == "cancelled"


def test_batch_step() -> None:
    assert batch_step(0, [40, 30]) == 0
    assert batch_step(2, [40, 30]) == 1
    assert batch_step(60, [40, 30]) == 30
    assert batch_step(65, [40, 30]) == 35
    assert batch_step(70, [40, 30]) == 40
    assert batch_step(1000, [40, 30]) == 40
    assert batch_step(5, []) == 0


def test_task_options() -> None:
    task = celery_app.tasks[SIMULATE_BATCH_TASK]
    assert task.name == simulate_batch_runs.name
    assert task.acks_late and task.reject_on_worker_lost and task.ignore_result


def _row_counts(settings: Settings, ids: list) -> list[int]:  # type: ignore[type-arg]
    from sqlalchemy import func, select

    from models import TrajectoryPoint

    with get_sessionmaker(settings.db_url)() as s:
        return [int(s.scalar(select(func.count()).select_from(TrajectoryPoint)
                             .where(TrajectoryPoint.run_id == i)) or 0) for i in ids]  # fmt: skip


@pytest.mark.parametrize("live", [True, False])
def test_live_rows_are_stored_with_the_progress_writes(settings: Settings, live: bool, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With LINDYN_LIVE_ROWS (the default) each progress write of a batch stores the rows its runs recorded
    meanwhile, so their stored rows grow while they run; without, none until the end. Either way the end
    stores exactly the trajectory dynamics returns, nothing doubled."""
    settings = settings.model_copy(update={"live_rows": live})
    ids = queued_runs(settings, POINTS[:2])
    seen: list[list[int]] = []
    original = BatchProgressWriter.write

    def write(self: BatchProgressWriter, step: int, total: int) -> bool:
        running = original(self, step, total)
        seen.append(_row_counts(settings, ids))
        return running

    monkeypatch.setattr(BatchProgressWriter, "write", write)
    assert execute_batch(ids, settings) == {str(i): "succeeded" for i in ids}
    firsts = [counts[0] for counts in seen]
    if live:
        assert 0 < firsts[0] < firsts[len(firsts) // 2] < firsts[-1]  # growing while it ran
        assert firsts == sorted(firsts)
    else:
        assert set(firsts) == {0}
    with get_sessionmaker(settings.db_url)() as s:
        for run_id, point in zip(ids, POINTS[:2], strict=True):
            assert trajectory_columns(s, get_run(s, run_id)) == simulate(point).trajectory_columns()

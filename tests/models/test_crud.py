"""Runs through their statuses, a result stored and read back, a sweep's tags, on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import StatementError

from core import get_sessionmaker, session_scope
from dynamics import SimulationRequest, simulate
from models import Run, RunStatus, RunSummary, Sweep, SweepTag, TrajectoryPoint
from models.results import decode_spectrum, store_result, trajectory_columns
from models.runs import cancel_run, claim_run, fail_run, find_reusable_run, new_run, record_progress
from models.sweeps import create_sweep

REQ = SimulationRequest(d=10, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, steps=20,
                        dynamics=["gd", "self_consistent"], record_every=1, spectrum_every=5)


@pytest.fixture
def factory(db_url: str):  # type: ignore[no-untyped-def]
    return get_sessionmaker(db_url)


def _add(factory, request: SimulationRequest = REQ) -> Run:  # type: ignore[no-untyped-def]
    with session_scope(factory) as s:
        run = new_run(request)
        s.add(run)
    return run


def _claimed(factory) -> Run:  # type: ignore[no-untyped-def]
    run = _add(factory)
    with session_scope(factory) as s:
        claim_run(s, run.id)
    return run


def test_new_run_indexes_the_parameters(factory) -> None:  # type: ignore[no-untyped-def]
    run = _add(factory)
    with factory() as s:
        got = s.get(Run, run.id)
        assert got is not None
        assert (got.d, got.rank, got.width, got.status) == (10, 2, 100, "queued")
        assert got.sigma2 == pytest.approx(10**-1.5) and got.gamma_w == 2.0
        assert got.cache_key == REQ.cache_key() and got.request == REQ.normalized()
        assert got.dynamics_list == ["gd", "self_consistent"]
        assert got.regime == "active" and got.theory_applies and not got.underparametrised


def test_a_sweep_keeps_its_tags_and_its_runs_get_none(factory) -> None:  # type: ignore[no-untyped-def]
    requests = [REQ.model_copy(update={"seed": s}) for s in (0, 1)]
    with session_scope(factory) as s:
        sweep, run_ids = create_sweep(s, name="n", base_request={}, axes={"seed": [0, 1]}, requests=requests,
                                      tags={"project": "phase", "by": "ana"})  # fmt: skip
    with factory() as s:
        got = s.get(Sweep, sweep.id)
        assert got is not None and got.tags == {"by": "ana", "project": "phase"}
        assert list(got.tags) == ["by", "project"]  # ordered by key
        assert [r.tags for r in s.scalars(select(Run).where(Run.id.in_(run_ids)))] == [{}, {}]
    with session_scope(factory) as s:  # the database removes a sweep's tags with it (ON DELETE CASCADE)
        s.execute(delete(Sweep).where(Sweep.id == sweep.id))
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(SweepTag)) == 0


def test_status_transitions(factory) -> None:  # type: ignore[no-untyped-def]
    run = _add(factory)
    with session_scope(factory) as s:
        assert find_reusable_run(s, REQ.cache_key()).id == run.id
        claimed = claim_run(s, run.id)
        assert claimed is not None and claimed.status == "running" and claimed.attempts == 1
    with session_scope(factory) as s:
        assert record_progress(s, run.id, 5, 20)
        got = s.get(Run, run.id)
        assert cancel_run(s, got) and got.status == "cancelled"
    with session_scope(factory) as s:
        assert not record_progress(s, run.id, 6, 20)  # the worker learns it was cancelled
        assert claim_run(s, run.id) is None  # and a redelivery does not run it
        assert not fail_run(s, run.id, "boom")  # a cancelled run stays cancelled
        assert not cancel_run(s, s.get(Run, run.id))
        assert find_reusable_run(s, REQ.cache_key()) is None  # cancelled runs are not reused
        assert s.get(Run, run.id).progress_step == 5


def test_status_columns_are_typed_enums(factory) -> None:  # type: ignore[no-untyped-def]
    run = _add(factory)
    with factory() as s:
        got = s.get(Run, run.id)
        assert got is not None and got.status is RunStatus.queued  # read back as the enum, not a str
        assert s.scalar(select(Run.status).where(Run.id == run.id)) is RunStatus.queued
        got.status = "finished"  # type: ignore[assignment]  # not a RunStatus
        with pytest.raises(StatementError, match="finished"):
            s.flush()


def test_failed_run_keeps_its_message(factory) -> None:  # type: ignore[no-untyped-def]
    run = _add(factory)
    with session_scope(factory) as s:
        assert fail_run(s, run.id, "ValueError: boom")
    with factory() as s:
        got = s.get(Run, run.id)
        assert (got.status, got.error) == ("failed", "ValueError: boom") and got.finished_at is not None
        assert find_reusable_run(s, REQ.cache_key()) is None


def test_store_result_round_trip_and_replace(factory) -> None:  # type: ignore[no-untyped-def]
    result = simulate(REQ)
    run = _claimed(factory)
    with session_scope(factory) as s:
        assert store_result(s, run.id, result) is RunStatus.succeeded
    # a second delivery of the same task: claimed again only while running; storing again replaces
    with session_scope(factory) as s:
        s.get(Run, run.id).status = "running"
    with session_scope(factory) as s:
        assert store_result(s, run.id, result) is RunStatus.succeeded
    with factory() as s:
        got = s.get(Run, run.id)
        assert got.status == "succeeded" and got.backend == result.backend and got.device == result.device
        assert got.lr == result.lr and got.timings == pytest.approx(result.timings)
        n_points = s.scalar(select(func.count()).select_from(TrajectoryPoint).where(TrajectoryPoint.run_id == run.id))
        assert n_points == sum(len(t) for t in result.trajectories.values())  # one copy, not two
        summaries = {r.dynamics: r for r in got.summaries}
        assert list(summaries) == list(result.summaries)
        for name, summary in result.summaries.items():
            assert {k: getattr(summaries[name], k) for k in summary.as_dict()} == summary.as_dict()
        assert got.has_comparison
        assert (got.max_distance, got.log_max_distance) == tuple(result.comparison.as_dict().values())

        # the trajectory comes back exactly
        assert trajectory_columns(s, got) == result.trajectory_columns()
        assert trajectory_columns(s, got, ["self_consistent"]) == result.trajectory_columns(["self_consistent"])

        # the spectrum, as float64 bytes, and GD's distance to self-consistent at each step
        for name, traj in result.trajectories.items():
            rows = s.scalars(
                select(TrajectoryPoint).where(TrajectoryPoint.run_id == run.id, TrajectoryPoint.dynamics == name,
                                              TrajectoryPoint.spectrum.is_not(None)).order_by(TrajectoryPoint.step)
            ).all()
            assert [r.step for r in rows] == traj.spectrum_steps.tolist()
            np.testing.assert_array_equal(np.stack([decode_spectrum(r.spectrum) for r in rows]), traj.spectrum)
        dist = s.execute(
            select(TrajectoryPoint.step, TrajectoryPoint.distance)
            .where(TrajectoryPoint.run_id == run.id, TrajectoryPoint.dynamics == "gd",
                   TrajectoryPoint.distance.is_not(None))
            .order_by(TrajectoryPoint.step)
        ).all()
        assert [st for st, _ in dist] == result.comparison.step.tolist()
        assert [x for _, x in dist] == result.comparison.distance.tolist()


def test_store_result_does_nothing_for_a_cancelled_run(factory) -> None:  # type: ignore[no-untyped-def]
    result = simulate(REQ)
    run = _claimed(factory)
    with session_scope(factory) as s:
        cancel_run(s, s.get(Run, run.id))
    with session_scope(factory) as s:
        assert store_result(s, run.id, result) is None
    with factory() as s:
        assert s.get(Run, run.id).status == "cancelled"
        assert s.scalar(select(func.count()).select_from(RunSummary)) == 0


def test_spectrum_and_metrics_at_different_steps(factory) -> None:  # type: ignore[no-untyped-def]
    """record_every and spectrum_every need not divide each other: rows exist for both, metrics only where recorded."""
    req = REQ.model_copy(update={"record_every": 3, "spectrum_every": 4, "dynamics": ["gd"]})
    req = SimulationRequest.model_validate(req.normalized())
    result = simulate(req)
    run = _add(factory, req)
    with session_scope(factory) as s:
        claim_run(s, run.id)
        s.flush()
        assert store_result(s, run.id, result) is RunStatus.succeeded
    with factory() as s:
        got = s.get(Run, run.id)
        assert trajectory_columns(s, got) == result.trajectory_columns()
        spec_steps = s.scalars(select(TrajectoryPoint.step).where(TrajectoryPoint.spectrum.is_not(None))
                               .order_by(TrajectoryPoint.step)).all()
        assert spec_steps == result.trajectories["gd"].spectrum_steps.tolist()

"""A refining sweep's rounds, in this process with real dynamics, on SQLite and PostgreSQL: the worker that
stores a round's last run starts the next (once, even with several at once), the reaper starts a round whose
start was lost, a round waits for every run of the one before, and a cancel stops the rounds."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from core import Settings, get_sessionmaker, session_scope
from core.jobs import SIMULATE_BATCH_TASK
from dynamics.refine import refine, round_budget
from models import Run, Sweep
from models.refinement import metric_value
from models.sweeps import cancel_sweep, create_sweep, sweep_runs
from service.grid import expand
from service.schemas.sweeps import SweepCreate
from workers.reliability import Reaper
from workers.refinement import after_runs, recover_rounds, start_rounds
from workers.tasks import execute_batch

BASE = {"d": 12, "rank": 2, "steps": 30, "stopping": "paper", "dynamics": ["gd"], "spectrum_every": 0}
AXES = {"gamma_sigma2": {"values": [-2.0, -1.0, 0.0]}, "gamma_w": {"values": [0.5, 1.5, 2.5]}}
REFINE = {"metric": "gd.min_test_error", "rounds": 2, "budget": 12}


class Sent:
    """A Celery app that records what is sent (the broker is not this test's subject: tests/e2e sends for real)."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, list[str], str]] = []
        self.lock = threading.Lock()

    def send_task(self, name: str, args: list[Any], queue: str) -> None:
        with self.lock:
            self.tasks.append((name, list(args[0]), queue))

    @property
    def run_ids(self) -> list[uuid.UUID]:
        return [uuid.UUID(r) for _, ids, _ in self.tasks for r in ids]


@pytest.fixture
def settings(db_url: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(data_dir=tmp_path, database_url=db_url, progress_interval_s=0, processes=2)


def submit(settings: Settings, refine_spec: dict[str, Any] = REFINE,
           base: dict[str, Any] = BASE) -> tuple[uuid.UUID, list[uuid.UUID]]:
    body = SweepCreate.model_validate({"base": base, "axes": AXES, "refine": refine_spec})
    grid = expand(body, settings.limits, settings.max_grid_points)
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        sweep, ids = create_sweep(s, name=None, base_request=grid.base, axes=grid.axes, requests=grid.requests,
                                  refine=refine_spec)
    return sweep.id, ids


def sweep_row(settings: Settings, sweep_id: uuid.UUID) -> Sweep:
    with get_sessionmaker(settings.db_url)() as s:
        sweep = s.get(Sweep, sweep_id)
        assert sweep is not None
        return sweep


def points_and_values(settings: Settings, sweep_id: uuid.UUID,
                      metric: str = REFINE["metric"]) -> dict[tuple[float, float], float | None]:
    with get_sessionmaker(settings.db_url)() as s:
        return {(r.request["gamma_sigma2"], r.request["gamma_w"]): metric_value(r, metric)
                for r in sweep_runs(s, sweep_id)}


def run_round(settings: Settings, ids: list[uuid.UUID]) -> None:
    assert set(execute_batch(ids, settings).values()) == {"succeeded"}


def test_rounds_run_to_the_end_with_the_points_the_rule_gives(settings: Settings) -> None:
    sweep_id, coarse_ids = submit(settings)
    coarse = [a["values"] for a in AXES.values()]
    run_round(settings, coarse_ids)
    before = points_and_values(settings, sweep_id)
    app = Sent()
    sent = after_runs(settings, app, coarse_ids)
    # round 1: the rule's points over the stored values, sent as batch tasks, one per worker process at least
    expected = refine(coarse, before, round_budget(12, 0, 2))
    assert 0 < sent == len(expected) and len(app.tasks) >= 2
    assert {(name, queue) for name, _, queue in app.tasks} == {(SIMULATE_BATCH_TASK, "cpu")}
    with get_sessionmaker(settings.db_url)() as s:
        new = {r.id: r for r in s.scalars(select(Run).where(Run.id.in_(app.run_ids)))}
        assert {r.status for r in new.values()} == {"queued"} and {r.sweep_id for r in new.values()} == {sweep_id}
        assert sorted((r.request["gamma_sigma2"], r.request["gamma_w"]) for r in new.values()) == sorted(expected)
    row = sweep_row(settings, sweep_id)
    assert (row.refine_round, row.refine_points, row.refine_state, row.total) == (1, [9, sent], "refining", 9 + sent)

    # the round's runs finish: round 2 from every value so far, within what is left of the budget
    run_round(settings, app.run_ids)
    values = points_and_values(settings, sweep_id)
    second = Sent()
    sent2 = after_runs(settings, second, app.run_ids)
    expected2 = refine(coarse, values, round_budget(12, sent, 1))
    assert sent2 == len(expected2) and sent + sent2 <= 12
    row = sweep_row(settings, sweep_id)
    assert (row.refine_round, row.refine_points, row.refine_state) == (2, [9, sent, sent2], "done")
    run_round(settings, second.run_ids)
    # done: nothing more, from the worker or the reaper
    assert after_runs(settings, Sent(), second.run_ids) == 0 and recover_rounds(settings, Sent()) == 0
    assert sweep_row(settings, sweep_id).total == 9 + sent + sent2 == len(points_and_values(settings, sweep_id))


def test_a_round_waits_for_every_run_of_the_one_before(settings: Settings) -> None:
    sweep_id, coarse_ids = submit(settings)
    run_round(settings, coarse_ids[:-1])
    app = Sent()
    assert after_runs(settings, app, coarse_ids[:-1]) == 0 and app.tasks == []
    assert recover_rounds(settings, app) == 0  # the reaper neither: a run is still queued
    assert sweep_row(settings, sweep_id).refine_round == 0
    run_round(settings, coarse_ids[-1:])
    assert after_runs(settings, app, coarse_ids[-1:]) > 0


def test_two_workers_finishing_at_once_start_the_round_once(settings: Settings) -> None:
    sweep_id, coarse_ids = submit(settings)
    run_round(settings, coarse_ids)
    app = Sent()
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def worker() -> None:
        barrier.wait()
        counts.append(start_rounds(settings, app, [sweep_id]))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    row = sweep_row(settings, sweep_id)
    assert row.refine_points is not None and len(counts) == 4
    assert sorted(counts)[:-1] == [0, 0, 0] and max(counts) == row.refine_points[1] > 0
    assert row.refine_round == 1 and row.total == 9 + max(counts) == len(points_and_values(settings, sweep_id))
    assert len(app.run_ids) == len(set(app.run_ids)) == max(counts)


def test_the_reaper_starts_a_round_whose_worker_died(settings: Settings) -> None:
    sweep_id, coarse_ids = submit(settings)
    run_round(settings, coarse_ids)  # the worker stored the last run, then died before starting round 1
    app = Sent()
    n = Reaper(settings, app).once()
    row = sweep_row(settings, sweep_id)
    assert row.refine_points is not None
    assert n == row.refine_points[1] == len(app.run_ids) > 0 and row.refine_round == 1
    assert Reaper(settings, app).once() == 0  # its runs are queued now: nothing more until they finish


def test_a_cancel_stops_the_rounds(settings: Settings) -> None:
    sweep_id, coarse_ids = submit(settings)
    run_round(settings, coarse_ids)
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        assert cancel_sweep(s, sweep_id) == 1  # no run to cancel, the refinement stopped
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        assert cancel_sweep(s, sweep_id) == 0
    app = Sent()
    assert after_runs(settings, app, coarse_ids) == 0 and recover_rounds(settings, app) == 0 and app.tasks == []
    row = sweep_row(settings, sweep_id)
    assert (row.refine_round, row.refine_points, row.refine_state, row.total) == (0, [9], "cancelled", 9)


def test_a_flat_metric_ends_the_refinement(settings: Settings) -> None:
    # no stopping rule: every point runs its 30 steps, so steps_run is the same everywhere
    sweep_id, coarse_ids = submit(settings, {"metric": "gd.steps_run", "rounds": 3, "budget": 50},
                                  {**BASE, "stopping": "none"})
    run_round(settings, coarse_ids)
    assert set(points_and_values(settings, sweep_id, "gd.steps_run").values()) == {30}
    app = Sent()
    assert after_runs(settings, app, coarse_ids) == 0 and app.tasks == []
    row = sweep_row(settings, sweep_id)
    # nothing differs: no cell to split, the refinement is over at once (round 1 added nothing)
    assert (row.refine_round, row.refine_points, row.refine_state, row.total) == (1, [9, 0], "done", 9)


def test_refinement_on_the_comparison_of_gd_and_self_consistent(settings: Settings) -> None:
    spec = {"metric": "log_max_distance", "rounds": 1, "budget": 6}
    sweep_id, coarse_ids = submit(settings, spec, {**BASE, "dynamics": ["gd", "self_consistent"]})
    run_round(settings, coarse_ids)
    values = points_and_values(settings, sweep_id, "log_max_distance")
    assert all(v is not None for v in values.values())
    expected = refine([a["values"] for a in AXES.values()], values, 6)
    app = Sent()
    assert after_runs(settings, app, coarse_ids) == len(expected) > 0
    with get_sessionmaker(settings.db_url)() as s:
        new = s.scalars(select(Run).where(Run.id.in_(app.run_ids))).all()
        assert sorted((r.request["gamma_sigma2"], r.request["gamma_w"]) for r in new) == sorted(expected)
    assert sweep_row(settings, sweep_id).refine_state == "done"  # its one round started

"""The simulate_run task, called in this process with real dynamics, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import types
import uuid

import pytest

from core import Settings, get_sessionmaker, session_scope
from core.jobs import GPU_QUEUE, SIMULATE_RUN_TASK
from dynamics import SimulationRequest, simulate
from models import Run
from models.results import trajectory_columns
from models.runs import cancel_run, claim_run, new_run
from workers.celery_app import celery_app
from workers.tasks import ProgressWriter, RunCancelled, execute_run, simulate_run

REQ = SimulationRequest(d=12, rank=3, gamma_sigma2=-1.5, gamma_w=2.0, steps=30, dynamics=["gd", "self_consistent"])


@pytest.fixture
def settings(db_url: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(data_dir=tmp_path, database_url=db_url, progress_interval_s=0)


def _queued(settings: Settings, request: SimulationRequest | dict = REQ) -> uuid.UUID:
    factory = get_sessionmaker(settings.db_url)
    with session_scope(factory) as s:
        if isinstance(request, dict):  # a stored request that no longer validates
            run = new_run(REQ)
            run.request = request
        else:
            run = new_run(request)
        s.add(run)
    return run.id


def _run(settings: Settings, run_id: uuid.UUID) -> Run:
    with get_sessionmaker(settings.db_url)() as s:
        run = s.get(Run, run_id)
        assert run is not None
        _ = run.summaries
        return run


def test_runs_and_stores_what_dynamics_returns(settings: Settings) -> None:
    run_id = _queued(settings)
    assert execute_run(run_id, settings) == "succeeded"
    expected = simulate(REQ)
    run = _run(settings, run_id)
    assert run.status == "succeeded" and run.attempts == 1 and run.error is None
    assert run.progress_step == run.progress_total == 30
    assert run.backend == "numpy" and run.device == expected.device
    assert {s.dynamics: s.min_test_error for s in run.summaries} == {
        k: v.min_test_error for k, v in expected.summaries.items()
    }
    with get_sessionmaker(settings.db_url)() as s:
        assert trajectory_columns(s, s.get(Run, run_id)) == expected.trajectory_columns()
    # delivered again after it finished: nothing runs, nothing is duplicated
    assert execute_run(run_id, settings) == "skipped"


def test_diverged(settings: Settings) -> None:
    req = SimulationRequest(d=8, rank=2, gamma_sigma2=-1.0, gamma_w=2.0, steps=50, lr=5.0)
    run_id = _queued(settings, req)
    assert execute_run(run_id, settings) == "diverged"
    run = _run(settings, run_id)
    assert run.status == "diverged"
    assert run.summaries[0].stop_reason == "diverged" and run.summaries[0].diverged_step == 4


def test_failure_is_recorded_with_its_message(settings: Settings) -> None:
    bad = {**REQ.normalized(), "rank": 99}
    run_id = _queued(settings, bad)
    assert execute_run(run_id, settings) == "failed"
    run = _run(settings, run_id)
    assert run.status == "failed" and "rank" in (run.error or "") and run.finished_at is not None


def test_limits_of_the_settings_apply(settings: Settings) -> None:
    run_id = _queued(settings)
    tight = settings.model_copy(update={"max_steps": 10})
    assert execute_run(run_id, tight) == "failed"
    assert "steps = 30 exceeds the limit of 10" in (_run(settings, run_id).error or "")


def test_cancelled_before_start_is_skipped(settings: Settings) -> None:
    run_id = _queued(settings)
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        cancel_run(s, s.get(Run, run_id))
    assert execute_run(run_id, settings) == "skipped"
    assert _run(settings, run_id).status == "cancelled"


def test_cancel_while_running_stops_at_the_next_progress(settings: Settings) -> None:
    run_id = _queued(settings)
    factory = get_sessionmaker(settings.db_url)
    with session_scope(factory) as s:
        claim_run(s, run_id)
    progress = ProgressWriter(settings, run_id)
    progress(1, 30)
    assert _run(settings, run_id).progress_step == 1
    with session_scope(factory) as s:
        cancel_run(s, s.get(Run, run_id))
    with pytest.raises(RunCancelled):
        progress(2, 30)


def test_progress_writes_are_bounded_in_time(settings: Settings) -> None:
    run_id = _queued(settings)
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        claim_run(s, run_id)
    progress = ProgressWriter(settings.model_copy(update={"progress_interval_s": 3600}), run_id)
    for step in range(1, 1001):
        progress(step, 1000)
    assert progress.writes == 1  # only the last one: the rest came within the interval
    assert _run(settings, run_id).progress_step == 1000


def test_task_options() -> None:
    task = celery_app.tasks[SIMULATE_RUN_TASK]
    assert task.name == simulate_run.name
    assert task.acks_late and task.reject_on_worker_lost and task.ignore_result
    assert celery_app.conf.worker_prefetch_multiplier == 1
    assert {q.name for q in celery_app.conf.task_queues} == {"cpu", GPU_QUEUE}


def test_the_stored_request_runs_exactly_as_submitted(settings: Settings) -> None:
    """sigma2 = 0.01 given directly stays 0.01 (re-validating the normalised request would re-derive it)."""
    from workers.tasks import load_request

    req = SimulationRequest(d=12, rank=2, sigma2=0.01, width=10, steps=30, dynamics=["gd", "balanced"])
    loaded = load_request(req.normalized(), settings)
    assert loaded.sigma2 == 0.01 and loaded.normalized() == req.normalized()
    run_id = _queued(settings, req)
    assert execute_run(run_id, settings) == "succeeded"
    with get_sessionmaker(settings.db_url)() as s:
        assert trajectory_columns(s, s.get(Run, run_id)) == simulate(req).trajectory_columns()


def test_cancel_stops_the_run_within_a_step_between_progress_reports(settings: Settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Progress is written only at the end here (interval one hour), so only the cancel watch (polling every
    0.05 s) can see the cancel: the run stops long before its end and the worker is free."""
    from workers import tasks

    req = SimulationRequest(d=20, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, steps=20_000, stopping="none",
                            record_every=1000, spectrum_every=0, dynamics=["gd", "self_consistent"])
    run_id = _queued(settings, req)
    quiet = settings.model_copy(update={"progress_interval_s": 3600, "cancel_poll_interval_s": 0.05})
    reports: list[int] = []
    real_call = tasks.ProgressWriter.__call__

    def counting(self, step: int, total: int) -> None:  # type: ignore[no-untyped-def]
        reports.append(step)
        real_call(self, step, total)

    monkeypatch.setattr(tasks.ProgressWriter, "__call__", counting)
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(execute_run(run_id, quiet)))
    worker.start()
    deadline = time.monotonic() + 120
    while len(reports) < 3 and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(reports) >= 3, "the run did not get going"
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        assert cancel_run(s, s.get(Run, run_id))
    worker.join(120)
    assert outcome == ["cancelled"]
    assert max(reports) < 20_000 // 2, reports[-3:]  # stopped long before the end (reports come every 200 steps)
    assert _run(settings, run_id).status == "cancelled"


def test_a_task_over_its_time_limit_fails_its_run(settings: Settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Celery raises SoftTimeLimitExceeded in a task past LINDYN_TASK_TIME_LIMIT_S: the run is failed with that
    reason (not left running for the reaper to run again); the hard limit follows TASK_KILL_GRACE_S later."""
    from billiard.exceptions import SoftTimeLimitExceeded

    from core.jobs import TASK_KILL_GRACE_S, celery_config
    from workers import tasks

    conf = celery_config(settings.model_copy(update={"task_time_limit_s": 30.0}))
    assert conf["task_soft_time_limit"] == 30.0 and conf["task_time_limit"] == 30.0 + TASK_KILL_GRACE_S
    assert "task_soft_time_limit" not in celery_config(settings.model_copy(update={"task_time_limit_s": 0}))

    def over_time(*_: object, **__: object) -> None:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(tasks, "simulate", over_time)
    run_id = _queued(settings)
    assert execute_run(run_id, settings) == "failed"
    run = _run(settings, run_id)
    assert run.status == "failed" and "SoftTimeLimitExceeded" in (run.error or "")


def test_a_pool_process_gets_its_share_of_the_cores_as_blas_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """worker_init (before the pool forks) computes the BLAS threads of a pool process from the pool's
    concurrency; worker_process_init (in each process) pins the BLAS library to them (threadpoolctl)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from workers import celery_app as app_module

    monkeypatch.setattr("core.settings.cpu_cores", lambda: 4)
    monkeypatch.setattr(app_module, "blas_threads", 0)
    app_module._share_the_cores(sender=types.SimpleNamespace(concurrency=4, pool_cls="prefork"))
    assert app_module.blas_threads == 1
    app_module._share_the_cores(sender=types.SimpleNamespace(concurrency=2, pool_cls="prefork"))
    assert app_module.blas_threads == 2
    app_module._share_the_cores(sender=types.SimpleNamespace(concurrency=4, pool_cls="solo"))
    assert app_module.blas_threads == 4  # one process
    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas, "numpy's BLAS is seen by threadpoolctl"
    with threadpool_limits(limits=None):  # restore this process's limits afterwards
        monkeypatch.setattr(app_module, "blas_threads", 1)
        app_module._limit_blas_threads()
        assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} == {1}


def test_the_per_run_rule_gives_a_large_run_the_cores_nothing_else_uses() -> None:
    """large_run_threads: cores - this worker's other busy processes - the machine's other load (rounded up),
    never below the process's own threads."""
    from workers.celery_app import large_run_threads

    assert large_run_threads(1, 4, 0, 1.0) == 4  # alone (the load is this run)
    assert large_run_threads(1, 4, 1, 2.0) == 3  # one other process of the worker busy
    assert large_run_threads(1, 4, 0, 2.2) == 2  # 1.2 of other work on the machine: 2 cores taken
    assert large_run_threads(1, 2, 0, 9.0) == 1  # a loaded machine: no more than its own thread
    assert large_run_threads(2, 4, 3, 4.0) == 2  # never below the process's own


def get_settings_large_run_d() -> int:
    from core import get_settings

    return get_settings().large_run_d


@pytest.fixture
def pool_process(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """This process as a pool process of a 2-process worker on 2 idle cores: 1 BLAS thread, a busy counter."""
    from threadpoolctl import threadpool_limits

    from workers import celery_app as app_module

    monkeypatch.setattr("core.settings.cpu_cores", lambda: 2)
    monkeypatch.setattr(app_module.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    monkeypatch.setattr(app_module, "_busy", app_module.BusyProcesses(4))
    monkeypatch.setattr(app_module, "blas_threads", 1)
    with threadpool_limits(limits=1, user_api="blas"):
        yield app_module


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def test_a_large_single_run_takes_the_idle_cores_and_gives_them_back(pool_process: types.ModuleType) -> None:
    large = get_settings_large_run_d()
    with pool_process.task_blas_threads([large], ["numpy"]) as threads:
        assert len(pool_process._busy) == 1
        assert _blas_threads() == {2} and threads.threads == 2
        # another process of the worker (a live pid: this one's parent) starts a task: the next checkpoint
        # gives its core back
        pool_process._busy.enter(os.getppid())
        threads.recheck_s = 0.0
        threads.checkpoint()()
        assert _blas_threads() == {1}
        pool_process._busy.leave(os.getppid())
        threads.checkpoint()()
        assert _blas_threads() == {2}
    assert len(pool_process._busy) == 0 and _blas_threads() == {1}  # the process's own limit again


def test_a_process_killed_inside_a_task_does_not_stay_busy(pool_process: types.ModuleType) -> None:
    """A pool process SIGKILLed mid-task never leaves: its pid stays in the array, but a dead pid is neither
    counted nor keeps its slot, so the next large run still gets the idle cores."""
    busy = pool_process.BusyProcesses(2)
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    busy.enter(killed.pid)
    busy.enter(os.getppid())
    assert busy.others() == 2 and len(busy) == 2
    killed.kill()
    killed.wait()
    assert busy.others() == 1 and len(busy) == 1  # the killed process no longer counts
    busy.enter()  # both slots held: this process takes the dead one's
    assert list(busy.pids) == [os.getpid(), os.getppid()]
    assert busy.others() == 1 and len(busy) == 2
    busy.leave(os.getppid())
    busy.leave()
    assert list(busy.pids) == [0, 0]
    large = get_settings_large_run_d()
    pool_process._busy.enter(killed.pid)  # a dead pid left in the worker's own array
    with pool_process.task_blas_threads([large], ["numpy"]) as threads:
        assert threads.threads == 2 and _blas_threads() == {2}


def test_small_runs_batches_and_gpu_runs_keep_the_process_threads(pool_process: types.ModuleType) -> None:
    large = get_settings_large_run_d()
    for ds, backends in (([large - 1], ["numpy"]), ([large, large], ["numpy", "numpy"]), ([large], ["cupy"])):
        with pool_process.task_blas_threads(ds, backends) as threads:
            threads.recheck_s = 0.0
            threads.checkpoint()()
            assert _blas_threads() == {1} and len(pool_process._busy) == 1
    assert len(pool_process._busy) == 0


def test_execute_run_runs_a_large_run_under_the_rule(
    settings: Settings, pool_process: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring: execute_run's simulate sees the idle cores' threads for a run of d >= large_run_d; the
    process's own threads come back afterwards."""
    from workers import tasks

    monkeypatch.setattr(pool_process, "get_settings", lambda: Settings(large_run_d=10))
    seen: list[set[int]] = []

    def observed(request, progress=None, checkpoint=None, rows=None):  # type: ignore[no-untyped-def]
        assert checkpoint is not None
        checkpoint()
        seen.append(_blas_threads())
        return simulate(request, progress=progress, checkpoint=checkpoint, rows=rows)

    monkeypatch.setattr(tasks, "simulate", observed)
    run_id = _queued(settings, REQ)  # d = 12
    assert execute_run(run_id, settings) == "succeeded"
    assert seen == [{2}] and _blas_threads() == {1}

"""Each task records its execution (task_executions) when it ends, and the reaper prunes old records: the
Celery tasks applied in this process with real dynamics, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from core import Settings, get_sessionmaker, session_scope
from core.jobs import SIMULATE_BATCH_TASK, SIMULATE_RUN_TASK
from models import TaskExecution
from models.base import utcnow
from models.executions import TaskOutcome, record_task_execution
from models.runs import cancel_run
from tests.workers.stored import get_run, queued_runs, stored_run
from tests.workers.test_batch_tasks import POINTS
from tests.workers.test_tasks import REQ
from workers.reliability import Reaper
from workers.tasks import ProgressWriter, simulate_batch_runs, simulate_run
import workers.tasks


@pytest.fixture
def settings(db_url: str, embedded_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the tasks read (``get_settings``): this database."""
    settings = embedded_settings.model_copy(update={"database_url": db_url, "progress_interval_s": 0})
    monkeypatch.setattr(workers.tasks, "get_settings", lambda: settings)
    return settings


def _executions(settings: Settings) -> list[TaskExecution]:
    with get_sessionmaker(settings.db_url)() as s:
        return list(s.scalars(select(TaskExecution).order_by(TaskExecution.finished_at)))


def _cancel(settings: Settings, run_id: uuid.UUID) -> None:
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        cancel_run(s, get_run(s, run_id))


def test_a_run_task_records_one_row(settings: Settings) -> None:
    [run_id] = queued_runs(settings, [REQ])
    assert simulate_run.apply(args=[str(run_id)], task_id="task-1").get() == "succeeded"
    [row] = _executions(settings)
    run = stored_run(settings, run_id)
    assert (row.task, row.celery_task_id, row.runs, row.outcome) == (SIMULATE_RUN_TASK, "task-1", 1, "succeeded")
    assert row.worker == f"{socket.gethostname()}/{os.getpid()}"
    # timed around the run: claimed after the task started, its result stored before the task ended
    assert run.started_at is not None and run.finished_at is not None
    assert row.started_at <= run.started_at <= run.finished_at <= row.finished_at
    assert 0 <= row.duration_s <= (row.finished_at - row.started_at).total_seconds() + 1e-5  # stored to the us

    # delivered again: nothing to claim, recorded as such
    assert simulate_run.apply(args=[str(run_id)], task_id="task-2").get() == "skipped"
    again = _executions(settings)[1]
    assert (again.celery_task_id, again.runs, again.outcome) == ("task-2", 1, "nothing")


def test_a_batch_task_records_one_row_for_its_runs(settings: Settings) -> None:
    ids = queued_runs(settings, POINTS)
    outcome = simulate_batch_runs.apply(args=[[str(i) for i in ids]], task_id="batch-1").get()
    assert outcome == {str(i): "succeeded" for i in ids}
    [row] = _executions(settings)
    assert (row.task, row.celery_task_id, row.runs, row.outcome) == (SIMULATE_BATCH_TASK, "batch-1", 4, "succeeded")
    assert 0 <= row.duration_s <= (row.finished_at - row.started_at).total_seconds() + 1e-5


def test_a_batch_whose_runs_end_differently_is_partial(settings: Settings) -> None:
    ids = queued_runs(settings, POINTS[:3])
    _cancel(settings, ids[0])  # not claimed: does not count
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        get_run(s, ids[1]).request = {**POINTS[1].normalized(), "rank": 99}  # no longer valid
    outcome = simulate_batch_runs.apply(args=[[str(i) for i in ids]]).get()
    assert sorted(outcome.values()) == ["failed", "skipped", "succeeded"]
    [row] = _executions(settings)
    assert (row.runs, row.outcome) == (3, "partial")


def test_a_task_given_a_cancelled_run_records_nothing(settings: Settings) -> None:
    [run_id] = queued_runs(settings, [REQ])
    _cancel(settings, run_id)
    assert simulate_run.apply(args=[str(run_id)]).get() == "skipped"
    assert [(r.runs, r.outcome) for r in _executions(settings)] == [(1, "nothing")]
    assert stored_run(settings, run_id).status == "cancelled"


def test_a_run_cancelled_while_running_records_cancelled(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    [run_id] = queued_runs(settings, [REQ])
    original = ProgressWriter.write

    def cancel_first(self: ProgressWriter, step: int, total: int) -> bool:
        _cancel(settings, run_id)  # by the API, while the task runs
        return original(self, step, total)

    monkeypatch.setattr(ProgressWriter, "write", cancel_first)
    assert simulate_run.apply(args=[str(run_id)]).get() == "cancelled"
    assert [(r.runs, r.outcome) for r in _executions(settings)] == [(1, "cancelled")]
    assert stored_run(settings, run_id).status == "cancelled"


def test_a_simulation_that_raises_records_failed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    [run_id] = queued_runs(settings, [REQ])

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(workers.tasks, "simulate", boom)
    assert simulate_run.apply(args=[str(run_id)]).get() == "failed"
    run = stored_run(settings, run_id)
    assert run.status == "failed" and run.error == "RuntimeError: boom" and run.finished_at is not None
    assert [(r.runs, r.outcome) for r in _executions(settings)] == [(1, "failed")]


def test_a_task_that_raises_records_failed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*_: object) -> None:
        raise ConnectionError("database away")

    monkeypatch.setattr(workers.tasks, "execute_batch", down)
    with pytest.raises(ConnectionError):
        simulate_batch_runs.apply(args=[[str(uuid.uuid4()), str(uuid.uuid4())]]).get()
    assert [(r.runs, r.outcome) for r in _executions(settings)] == [(2, "failed")]


def test_a_record_that_cannot_be_written_changes_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    [run_id] = queued_runs(settings, [REQ])

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("table away")

    monkeypatch.setattr(workers.tasks, "record_task_execution", broken)
    with caplog.at_level(logging.ERROR, logger="workers.tasks"):
        assert simulate_run.apply(args=[str(run_id)]).get() == "succeeded"
    run = stored_run(settings, run_id)
    assert run.status == "succeeded" and run.error is None and len(run.summaries) == 2
    assert _executions(settings) == []
    assert "its execution could not be recorded" in caplog.text and "table away" in caplog.text


def _recorded(settings: Settings, age_days: float) -> None:
    finished = utcnow() - timedelta(days=age_days)
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        record_task_execution(s, task=SIMULATE_RUN_TASK, runs=1, outcome=TaskOutcome.succeeded,
                              started_at=finished - timedelta(seconds=2), finished_at=finished, duration_s=2.0)


def test_the_reaper_prunes_old_records(settings: Settings) -> None:
    for age_days in (40, 31, 29, 0):
        _recorded(settings, age_days)
    Reaper(settings.model_copy(update={"task_history_days": 0}), app=None).once()  # 0: keep them all
    assert len(_executions(settings)) == 4
    Reaper(settings.model_copy(update={"task_history_days": 30}), app=None).once()
    ages = [(utcnow() - r.finished_at).days for r in _executions(settings)]
    assert ages == [29, 0]

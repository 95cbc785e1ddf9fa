"""A run whose worker is lost every time (killed by the task's hard time limit, out of memory) is started at most
LINDYN_MAX_ATTEMPTS times: when it comes back once more (the reaper requeued it, or the broker delivered its task
again) the claim fails it with an error that says why, instead of starting it again for ever. On SQLite and
PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from core import Settings, get_sessionmaker, session_scope
from dynamics import SimulationRequest
from models import Run, RunStatus
from models.base import utcnow
from models.reaper import requeue_if_stale
from models.runs import claim_run, gave_up
from tests.workers.stored import queued_runs, stored_run
from workers.tasks import execute_batch, execute_run

REQ = SimulationRequest(d=8, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, steps=10, dynamics=["gd"])
STALE_S = 60.0


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=db_url, progress_interval_s=0, max_attempts=2,
                    stale_after_s=STALE_S)


def lost_worker(settings: Settings, run_id: uuid.UUID) -> None:
    """A worker claims the run and dies (no heartbeat since long ago); the reaper puts it back in the queue."""
    factory = get_sessionmaker(settings.db_url)
    with session_scope(factory) as s:
        assert claim_run(s, run_id, fresh_s=STALE_S, max_attempts=settings.max_attempts) is not None
        long_ago = utcnow() - timedelta(seconds=10 * STALE_S)
        s.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=long_ago, started_at=long_ago))
    with session_scope(factory) as s:
        assert requeue_if_stale(s, run_id, STALE_S)


@pytest.mark.parametrize("execute", ["run", "batch"])
def test_a_run_whose_worker_is_lost_every_time_fails_after_max_attempts(settings: Settings, execute: str) -> None:
    (run_id,) = queued_runs(settings, [REQ])
    for _ in range(settings.max_attempts):
        lost_worker(settings, run_id)
    assert stored_run(settings, run_id).status == RunStatus.queued  # requeued, attempts used up
    if execute == "run":
        assert execute_run(run_id, settings) == "skipped"
    else:
        assert execute_batch([run_id], settings) == {str(run_id): "skipped"}
    run = stored_run(settings, run_id)
    assert run.status == RunStatus.failed and run.attempts == settings.max_attempts
    assert run.error == gave_up(settings.max_attempts) and "LINDYN_MAX_ATTEMPTS" in (run.error or "")
    assert run.finished_at is not None


def test_a_run_lost_fewer_times_runs(settings: Settings) -> None:
    (run_id,) = queued_runs(settings, [REQ])
    lost_worker(settings, run_id)
    assert execute_run(run_id, settings) == "succeeded"
    run = stored_run(settings, run_id)
    assert run.status == RunStatus.succeeded and run.attempts == 2 and run.error is None

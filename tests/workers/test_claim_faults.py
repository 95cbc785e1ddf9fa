"""A worker's claim when PostgreSQL terminates its backend mid-claim (pg_terminate_backend from another
connection, as a server restart or a network drop would): the claim is retried like the other writes, and a
task whose claim failed for good is sent again, never acknowledged as done."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery.exceptions import Retry
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

import migrations
from dynamics import SimulationRequest
from core import Settings, get_sessionmaker
from models import reaper
from tests.conftest import POSTGRES_URL
from tests.workers.stored import queued_runs, stored_run
from workers import tasks
from workers.tasks import execute_batch, execute_run, simulate_run

pytestmark = pytest.mark.postgres

REQ = SimulationRequest(d=12, rank=3, gamma_sigma2=-1.5, gamma_w=2.0, steps=30, dynamics=["gd"])


@pytest.fixture
def settings(postgres_url: str, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    migrations.upgrade(postgres_url)
    return Settings(data_dir=tmp_path, database_url=postgres_url, progress_interval_s=0)


class ClaimKiller:
    """Terminates the backend of the worker's connection as it sends its claim (``SELECT ... FOR UPDATE``),
    ``times`` times."""

    def __init__(self, settings: Settings, times: int) -> None:
        self.engine = get_sessionmaker(settings.db_url).kw["bind"]
        self.admin = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        self.left = times
        self.killed = 0
        event.listen(self.engine, "before_cursor_execute", self._kill)

    def _kill(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.left > 0 and "FOR UPDATE" in statement:
            self.left -= 1
            pid = conn.connection.dbapi_connection.info.backend_pid
            with self.admin.connect() as admin:
                assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
            self.killed += 1

    def remove(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._kill)
        self.admin.dispose()


def killing(settings: Settings, times: int) -> Iterator[ClaimKiller]:
    killer = ClaimKiller(settings, times)
    try:
        yield killer
    finally:
        killer.remove()


def test_a_claim_whose_connection_drops_is_retried(settings: Settings) -> None:
    (run_id,) = queued_runs(settings, [REQ])
    for killer in killing(settings, times=2):
        assert execute_run(run_id, settings) == "succeeded"
        assert killer.killed == 2
    run = stored_run(settings, run_id)
    assert run.status == "succeeded" and run.attempts == 1 and run.error is None


def test_a_batch_claim_whose_connection_drops_is_retried(settings: Settings) -> None:
    ids = queued_runs(settings, [REQ.model_copy(update={"seed": s}) for s in range(3)])
    for killer in killing(settings, times=1):
        assert set(execute_batch(ids, settings).values()) == {"succeeded"}
        assert killer.killed == 1
    assert [stored_run(settings, r).attempts for r in ids] == [1, 1, 1]


def test_a_task_whose_claim_keeps_failing_is_sent_again(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database stays unreachable through every retry: the task is retried (a copy sent later), not
    acknowledged as done; the run is still queued for that copy (or the reaper)."""
    monkeypatch.setattr(tasks, "get_settings", lambda: settings)
    monkeypatch.setattr(tasks, "in_transaction", _no_wait_in_transaction)
    retries: list[dict[str, Any]] = []

    def retry(**kwargs: Any) -> Retry:
        retries.append(kwargs)
        return Retry("database unreachable")

    monkeypatch.setattr(simulate_run, "retry", retry)
    (run_id,) = queued_runs(settings, [REQ])
    for killer in killing(settings, times=100):
        result = simulate_run.apply(args=[str(run_id)])
        assert killer.killed == 3  # the first try and each retry, all killed
    assert result.state == "RETRY"
    assert len(retries) == 1 and retries[0]["countdown"] == tasks.DB_DOWN_COUNTDOWN_S
    assert stored_run(settings, run_id).status == "queued"


def _no_wait_in_transaction(factory: Any, work: Any, *, delays: Any = ()) -> Any:
    """``in_transaction`` with two immediate retries (the real one waits about 15 s in all)."""
    return reaper.in_transaction(factory, work, delays=(0.0, 0.0))


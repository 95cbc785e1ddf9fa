"""A sweep's cancel and a worker claiming the sweep's runs at the same moment, on the real PostgreSQL from two
threads (issue #13, item 7): both take the runs' row locks in the order of their ids (models/runs.py
``lock_in_order``), so neither is chosen as a deadlock victim; the other multi-run writes (a batch's progress,
failing a batch, the heartbeat) lock alike."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core import get_sessionmaker, session_scope
from dynamics import SimulationRequest
from models import Run, RunStatus
from models.reaper import beat
from models.runs import claim_runs, fail_runs, record_batch_progress
from models.sweeps import cancel_sweep, create_sweep

pytestmark = pytest.mark.postgres

RUNS = 150
ROUNDS = 4


def _at_once(factory: Any, *works: Callable[[Session], Any]) -> list[BaseException | None]:
    """Each ``work(session)`` in a transaction of its own (not retried), from its own thread, released together;
    the exception each raised (None: none)."""
    barrier = threading.Barrier(len(works))
    raised: list[BaseException | None] = [None] * len(works)

    def go(i: int) -> None:
        barrier.wait(30)
        try:
            with session_scope(factory) as session:
                works[i](session)
        except Exception as exc:  # noqa: BLE001 - reported below
            raised[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(works))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    return raised


@pytest.fixture
def sweep(postgres_url: str) -> tuple[Any, uuid.UUID, list[uuid.UUID]]:
    import migrations

    migrations.upgrade(postgres_url)
    factory = get_sessionmaker(postgres_url)
    requests = [SimulationRequest(d=6, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, steps=5, seed=i) for i in range(RUNS)]
    with session_scope(factory) as s:  # random ids inserted in grid order: the table's order is not the ids'
        made, run_ids = create_sweep(s, name=None, base_request={}, axes={}, requests=requests)
    assert sorted(run_ids) != run_ids
    return factory, made.id, run_ids


def _requeue(factory: Any, status: RunStatus = RunStatus.queued) -> None:
    with session_scope(factory) as s:
        s.execute(update(Run).values(status=status, finished_at=None))


def test_a_sweep_cancel_and_a_claim_at_once_do_not_deadlock(sweep: tuple[Any, uuid.UUID, list[uuid.UUID]]) -> None:
    factory, sweep_id, run_ids = sweep
    for _ in range(ROUNDS):
        _requeue(factory)
        raised = _at_once(factory, lambda s: claim_runs(s, run_ids), lambda s: cancel_sweep(s, sweep_id))
        assert raised == [None, None], raised
        with factory() as s:  # a run the claim took first is cancelled running; the others are never claimed
            counts = dict(s.execute(select(Run.status, func.count()).group_by(Run.status)).all())
        assert counts == {RunStatus.cancelled: RUNS}, counts


def test_batch_writes_and_a_sweep_cancel_at_once_do_not_deadlock(
    sweep: tuple[Any, uuid.UUID, list[uuid.UUID]],
) -> None:
    factory, sweep_id, run_ids = sweep
    reversed_ids = sorted(run_ids, reverse=True)  # asked in the opposite order: the locks are still taken by id
    for _ in range(ROUNDS):
        _requeue(factory, RunStatus.running)
        raised = _at_once(factory,
                          lambda s: record_batch_progress(s, reversed_ids, 3),
                          lambda s: beat(s, reversed_ids),
                          lambda s: fail_runs(s, reversed_ids[: RUNS // 2], "boom"),
                          lambda s: cancel_sweep(s, sweep_id))
        assert raised == [None] * 4, raised
        with factory() as s:
            active = s.scalar(select(func.count()).select_from(Run).where(Run.status == RunStatus.running))
        assert active == 0  # the cancel came first or last, and cancelled whatever the failure left

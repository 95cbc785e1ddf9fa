"""Heartbeat, stale-run requeue and the retried transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from core import get_sessionmaker, session_scope
from core.db import in_transaction, is_disconnect
from dynamics import SimulationRequest
from models import Run
from models.base import utcnow
from models.reaper import beat, reap, stale_runs, stranded_runs
from models.runs import claim_run, new_run

REQ = SimulationRequest(d=10, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, steps=20)


@pytest.fixture
def factory(db_url: str):  # type: ignore[no-untyped-def]
    return get_sessionmaker(db_url)


def _running(factory, *, age_s: float, beat_age_s: float | None) -> uuid.UUID:  # type: ignore[no-untyped-def]
    with session_scope(factory) as s:
        run = new_run(REQ.model_copy(update={"seed": int(uuid.uuid4().int % 10**6)}))
        s.add(run)
    with session_scope(factory) as s:
        claimed = claim_run(s, run.id)
        assert claimed is not None
        claimed.started_at = utcnow() - timedelta(seconds=age_s)
        claimed.heartbeat_at = None if beat_age_s is None else utcnow() - timedelta(seconds=beat_age_s)
    return run.id


def _status(factory, run_id: uuid.UUID) -> str:  # type: ignore[no-untyped-def]
    with factory() as s:
        run = s.get(Run, run_id)
        assert run is not None
        return run.status


def test_stale_runs_are_requeued_once(factory) -> None:  # type: ignore[no-untyped-def]
    dead = _running(factory, age_s=600, beat_age_s=300)  # stopped beating
    never = _running(factory, age_s=600, beat_age_s=None)  # died before its first beat
    alive = _running(factory, age_s=600, beat_age_s=1)  # a long run that beats
    young = _running(factory, age_s=1, beat_age_s=None)  # just started
    sent: list[tuple[uuid.UUID, str]] = []
    assert reap(factory, 60, lambda r, b: sent.append((r, b))) == 2
    assert sorted(sent) == sorted([(dead, "auto"), (never, "auto")])
    assert [_status(factory, r) for r in (dead, never, alive, young)] == ["queued", "queued", "running", "running"]
    assert reap(factory, 60, lambda r, b: sent.append((r, b))) == 0  # a second reaper finds nothing
    assert len(sent) == 2
    with session_scope(factory) as s:  # the requeued run is claimed again by the next delivery
        again = claim_run(s, dead)
        assert again is not None and again.attempts == 2


def test_a_failed_send_is_tried_again(factory) -> None:  # type: ignore[no-untyped-def]
    run_id = _running(factory, age_s=600, beat_age_s=300)

    def broken(*_: object) -> None:
        raise ConnectionError("broker down")

    assert reap(factory, 60, broken) == 0
    assert _status(factory, run_id) == "running"  # still stale: the next round takes it
    sent: list[uuid.UUID] = []
    assert reap(factory, 60, lambda r, b: sent.append(r)) == 1 and sent == [run_id]


def test_beat_keeps_a_run_fresh(factory) -> None:  # type: ignore[no-untyped-def]
    run_id = _running(factory, age_s=600, beat_age_s=300)
    queued = new_run(REQ.model_copy(update={"seed": 12345}))
    with session_scope(factory) as s:
        s.add(queued)
    with session_scope(factory) as s:
        assert beat(s, [run_id, queued.id]) == 1  # only running runs beat
    with factory() as s:
        assert stale_runs(s, 60) == []


def test_in_transaction_retries_a_dropped_connection(factory) -> None:  # type: ignore[no-untyped-def]
    calls = []

    def flaky(session) -> int:  # type: ignore[no-untyped-def]
        calls.append(1)
        session.execute(text("SELECT 1"))
        if len(calls) < 3:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))
        return 7

    assert in_transaction(factory, flaky, delays=(0, 0, 0)) == 7 and len(calls) == 3

    def always(session) -> None:  # type: ignore[no-untyped-def]
        raise OperationalError("SELECT 1", {}, Exception("down"))

    with pytest.raises(OperationalError):
        in_transaction(factory, always, delays=(0, 0))

    def wrong(session) -> None:  # type: ignore[no-untyped-def]
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("duplicate"))

    calls.clear()
    with pytest.raises(IntegrityError):  # not a connection failure: not retried
        in_transaction(factory, wrong, delays=(0, 0))
    assert len(calls) == 1
    assert not is_disconnect(ValueError())


def test_a_live_run_is_not_claimed_twice(factory) -> None:  # type: ignore[no-untyped-def]
    """A copy of the task delivered again while the run's worker still beats is skipped; once the heartbeat
    is stale the copy takes the run over."""
    live = _running(factory, age_s=600, beat_age_s=1)
    dead = _running(factory, age_s=600, beat_age_s=300)
    with session_scope(factory) as s:
        assert claim_run(s, live, fresh_s=60) is None
        taken = claim_run(s, dead, fresh_s=60)
        assert taken is not None and taken.attempts == 2 and taken.heartbeat_at is not None
    with session_scope(factory) as s:
        assert claim_run(s, dead, fresh_s=60) is None  # claiming wrote a fresh heartbeat
        assert claim_run(s, live) is not None  # without fresh_s: taken over as before


def _queued(factory, *, waited_s: float, backend: str = "auto") -> uuid.UUID:  # type: ignore[no-untyped-def]
    """A queued run whose task was sent ``waited_s`` ago."""
    with session_scope(factory) as s:
        run = new_run(REQ.model_copy(update={"seed": int(uuid.uuid4().int % 10**6), "backend": backend}))
        run.created_at = run.queued_at = utcnow() - timedelta(seconds=waited_s)
        s.add(run)
    return run.id


def test_stranded_queued_runs_are_sent_again_once(factory) -> None:  # type: ignore[no-untyped-def]
    """A queued run that waited longer than the stale limit while no worker took anything is sent again (its
    message may be lost: Redis restarted, the API killed before sending, a claim that failed); once per
    stale limit, by one reaper."""
    lost = _queued(factory, waited_s=300)
    recent = _queued(factory, waited_s=1)
    sent: list[tuple[uuid.UUID, str]] = []
    with factory() as s:
        assert stranded_runs(s, 60) == [(lost, "auto")]
    assert reap(factory, 60, lambda r, b: sent.append((r, b))) == 1 and sent == [(lost, "auto")]
    assert [_status(factory, r) for r in (lost, recent)] == ["queued", "queued"]
    assert reap(factory, 60, lambda r, b: sent.append((r, b))) == 0  # sent just now: not again before 60 s
    assert len(sent) == 1
    with session_scope(factory) as s:  # the copy is claimed once: a second copy finds it running and beating
        assert claim_run(s, lost, fresh_s=60) is not None
    with session_scope(factory) as s:
        assert claim_run(s, lost, fresh_s=60) is None


def test_a_backlog_behind_a_busy_worker_is_not_sent_again(factory) -> None:  # type: ignore[no-untyped-def]
    """Runs waiting behind a live worker of their queue are not stranded; another queue's are."""
    waiting = _queued(factory, waited_s=300)
    on_gpu = _queued(factory, waited_s=300, backend="cupy")
    _running(factory, age_s=600, beat_age_s=1)  # a CPU worker busy with a long run
    sent: list[uuid.UUID] = []
    assert reap(factory, 60, lambda r, b: sent.append(r), queues={"cpu"}) == 0  # a CPU worker's reaper
    assert reap(factory, 60, lambda r, b: sent.append(r), queues={"gpu"}) == 1 and sent == [on_gpu]
    assert _status(factory, waiting) == "queued"


def test_a_requeued_stale_run_is_not_also_sent_as_stranded(factory) -> None:  # type: ignore[no-untyped-def]
    dead = _running(factory, age_s=600, beat_age_s=300)
    sent: list[uuid.UUID] = []
    assert reap(factory, 60, lambda r, b: sent.append(r)) == 1 and sent == [dead]  # once, not twice

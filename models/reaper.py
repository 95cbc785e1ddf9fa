"""Surviving faults: the heartbeat of a running run (its database writes retried across dropped
connections by ``core.db.in_transaction``), and the reaper that finds runs stuck in ``running`` on a worker that died and queues them again.

Why a heartbeat (and not only the broker's visibility timeout):

- A worker SIGKILLed (or its machine lost) leaves its run ``running`` forever unless something notices.
  With Redis, Celery's ``acks_late`` + ``reject_on_worker_lost`` leave the task unacknowledged and Redis
  delivers it again after ``visibility_timeout`` (LINDYN_VISIBILITY_TIMEOUT_S); but Redis cannot tell a dead
  worker from a long run, so that timeout is long (an hour) and a copy must not run a live run again, and the
  embedded filesystem broker never delivers an unacknowledged message again at all.
- So each running task writes ``runs.heartbeat_at`` every LINDYN_HEARTBEAT_INTERVAL_S from a thread of its
  own (independent of how often the dynamics report progress), and every worker runs a reaper every
  LINDYN_REAPER_INTERVAL_S (and once when it starts): a run ``running`` whose heartbeat (or start, if it never
  beat) is older than LINDYN_STALE_AFTER_S is set back to ``queued`` (one atomic UPDATE per run, so two
  reapers never requeue it twice) and its id sent again. The heartbeat works the same on every broker and
  bounds the delay by ``stale_after_s`` rather than by the longest run; the visibility timeout stays as
  Redis's own safety net.
- A copy delivered twice (reaper and Redis both, or Redis again while a long run still runs) is harmless:
  a finished run is skipped when claimed, a running run whose heartbeat is fresh is left to its worker
  (``claim_run(fresh_s=stale_after_s)``), and storing a result replaces the run's rows in one transaction,
  so a trajectory is held once.
- A run can also be stranded ``queued``: its message lost with a Redis restarted without persistence, never
  sent (the API killed between the INSERT and the send), or taken by a worker whose claim failed. The broker
  cannot be trusted to hold it, so the reaper sends its id again once the run has waited LINDYN_STALE_AFTER_S
  since its task was last sent (``runs.queued_at``) while no worker of its queue was taking anything (no run
  of that queue claimed or beating within that time: a run waiting behind a busy worker is not stranded, and
  a backlog is not sent twice). One conditional UPDATE of ``queued_at`` per run, so two reapers send it once;
  a copy that meets the original is harmless as above (the claim is the guard: one worker marks it running).
- A refining sweep whose round's last run was stored by a worker that died before starting the next round is
  started by the reaper too (models/refinement.py: ``stalled_refinements``, one conditional UPDATE per round).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import in_transaction
from models.base import RunStatus, utcnow
from core.jobs import queue_for
from models.runs import lock_in_order
from models.tables import Run, TrajectoryPoint

log = logging.getLogger(__name__)

def beat(session: Session, run_ids: Iterable[uuid.UUID]) -> int:
    """Write the heartbeat of those runs that are running; how many."""
    ids = list(run_ids)
    if not ids:
        return 0
    lock_in_order(session, Run.id.in_(ids), Run.status == RunStatus.running)
    stmt = update(Run).where(Run.id.in_(ids), Run.status == RunStatus.running).values(heartbeat_at=utcnow())
    return int(getattr(session.execute(stmt), "rowcount", 0) or 0)


def stale_runs(session: Session, stale_after_s: float, limit: int = 500) -> list[tuple[uuid.UUID, str]]:
    """(id, requested backend) of running runs whose heartbeat (or start) is older than ``stale_after_s``."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    stmt = (
        select(Run.id, Run.backend_requested)
        .where(
            Run.status == RunStatus.running,
            or_(Run.heartbeat_at < cutoff, Run.heartbeat_at.is_(None) & (Run.started_at < cutoff)),
        )
        .limit(limit)
    )
    return [(r[0], r[1]) for r in session.execute(stmt)]


def requeue_if_stale(session: Session, run_id: uuid.UUID, stale_after_s: float) -> bool:
    """Set a stale running run back to queued (the rows it stored as it went deleted: the next attempt writes
    them again); False when it beat meanwhile or is no longer running."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    stmt = (
        update(Run)
        .where(
            Run.id == run_id,
            Run.status == RunStatus.running,
            or_(Run.heartbeat_at < cutoff, Run.heartbeat_at.is_(None) & (Run.started_at < cutoff)),
        )
        .values(status=RunStatus.queued, heartbeat_at=None, queued_at=utcnow())
    )
    requeued = int(getattr(session.execute(stmt), "rowcount", 0) or 0) == 1
    if requeued:
        session.execute(delete(TrajectoryPoint).where(TrajectoryPoint.run_id == run_id))
    return requeued


def busy_queues(session: Session, stale_after_s: float) -> set[str]:
    """The queues with a live worker: a run of theirs claimed, or beating, within ``stale_after_s``."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    stmt = (
        select(Run.backend_requested)
        .where(Run.status == RunStatus.running.value, or_(Run.heartbeat_at >= cutoff, Run.started_at >= cutoff))
        .distinct()
    )
    return {queue_for(b) for b in session.scalars(stmt)}


def _waiting_since() -> ColumnElement[datetime]:
    """When a queued run's task was last sent."""
    return func.coalesce(Run.queued_at, Run.created_at)


def stranded_runs(
    session: Session, stale_after_s: float, limit: int = 500, queues: Collection[str] | None = None
) -> list[tuple[uuid.UUID, str]]:
    """(id, requested backend) of queued runs whose task was sent more than ``stale_after_s`` ago while no
    worker of their queue was busy (``busy_queues``): their message is lost, or no worker took it. Only the
    runs of ``queues`` (those the reaper's worker takes; None: all): a run for GPU workers where none runs
    is not sent again and again by CPU workers."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    busy = busy_queues(session, stale_after_s)
    stmt = (
        select(Run.id, Run.backend_requested)
        .where(Run.status == RunStatus.queued.value, _waiting_since() < cutoff)
        .order_by(_waiting_since())
        .limit(limit)
    )
    return [(r[0], r[1]) for r in session.execute(stmt)
            if queue_for(r[1]) not in busy and (queues is None or queue_for(r[1]) in queues)]


def resend_if_stranded(session: Session, run_id: uuid.UUID, stale_after_s: float) -> bool:
    """Mark a stranded queued run as sent now; False when it was claimed or sent again meanwhile."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.queued.value, _waiting_since() < cutoff)
        .values(queued_at=utcnow())
    )
    return int(getattr(session.execute(stmt), "rowcount", 0) or 0) == 1


def reap(
    factory: sessionmaker[Session], stale_after_s: float, send: Callable[[uuid.UUID, str], None],
    queues: Collection[str] | None = None,
) -> int:
    """Requeue every stale run and send its id again (``send(run_id, backend)``), then send again the ids of the
    stranded queued runs; how many were sent. A stale run is marked queued before its id is sent; if sending
    fails it is put back as a stale ``running`` run, so the next round tries again (a stranded run whose send
    failed is tried again after ``stale_after_s``)."""
    n = 0
    for run_id, backend in in_transaction(factory, lambda s: stale_runs(s, stale_after_s)):
        if not in_transaction(factory, lambda s, r=run_id: requeue_if_stale(s, r, stale_after_s)):  # type: ignore[misc]
            continue
        log.warning("run %s was running on a worker that stopped beating: queued again", run_id)
        try:
            send(run_id, backend)
        except Exception:
            log.exception("run %s: its task could not be sent; tried again at the next round", run_id)
            in_transaction(factory, lambda s, r=run_id: _put_back(s, r))  # type: ignore[misc]
            continue
        n += 1
    for run_id, backend in in_transaction(factory, lambda s: stranded_runs(s, stale_after_s, queues=queues)):
        if not in_transaction(factory, lambda s, r=run_id: resend_if_stranded(s, r, stale_after_s)):  # type: ignore[misc]
            continue
        log.warning("run %s waited %.0fs queued with no worker taking it: its task sent again", run_id, stale_after_s)
        try:
            send(run_id, backend)
        except Exception:
            log.exception("run %s: its task could not be sent; tried again later", run_id)
            continue
        n += 1
    return n


def _put_back(session: Session, run_id: uuid.UUID) -> None:
    """A requeued run whose task could not be sent: running again, with its old (stale) heartbeat gone."""
    session.execute(
        update(Run).where(Run.id == run_id, Run.status == RunStatus.queued).values(status=RunStatus.running)
    )

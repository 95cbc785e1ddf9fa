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
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.db import in_transaction
from models.base import RunStatus, utcnow
from models.tables import Run

log = logging.getLogger(__name__)

def beat(session: Session, run_ids: Iterable[uuid.UUID]) -> int:
    """Write the heartbeat of those runs that are running; how many."""
    ids = list(run_ids)
    if not ids:
        return 0
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
    """Set a stale running run back to queued; False when it beat meanwhile or is no longer running."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    stmt = (
        update(Run)
        .where(
            Run.id == run_id,
            Run.status == RunStatus.running,
            or_(Run.heartbeat_at < cutoff, Run.heartbeat_at.is_(None) & (Run.started_at < cutoff)),
        )
        .values(status=RunStatus.queued, heartbeat_at=None)
    )
    return int(getattr(session.execute(stmt), "rowcount", 0) or 0) == 1


def reap(factory: sessionmaker[Session], stale_after_s: float, send: Callable[[uuid.UUID, str], None]) -> int:
    """Requeue every stale run and send its id again (``send(run_id, backend)``); how many were requeued.
    The run is marked queued before its id is sent; if sending fails it is put back as a stale ``running``
    run, so the next round tries again."""
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
    return n


def _put_back(session: Session, run_id: uuid.UUID) -> None:
    """A requeued run whose task could not be sent: running again, with its old (stale) heartbeat gone."""
    session.execute(
        update(Run).where(Run.id == run_id, Run.status == RunStatus.queued).values(status=RunStatus.running)
    )

"""What the service and the workers do to runs: create and find them, move a run through its statuses
(claimed, progress, cancelled, failed), one at a time or a batch's at once. Sweeps are in sweeps.py, results
(summaries, trajectories, spectra) in results.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Update, case, delete, func, select, update
from sqlalchemy.orm import Session

from dynamics import SimulationRequest, regime
from models.base import RunStatus, utcnow
from models.tables import REUSABLE, Run, RunSummary, RunTag, TrajectoryPoint

ACTIVE = (RunStatus.queued, RunStatus.running)


def new_run(request: SimulationRequest, *, sweep_id: uuid.UUID | None = None) -> Run:
    """A queued run for a validated request (not yet added to a session)."""
    return Run(**run_row(request, sweep_id=sweep_id))


def run_row(request: SimulationRequest, *, sweep_id: uuid.UUID | None = None) -> dict[str, Any]:
    """The column values of a queued run for a validated request (for ``new_run`` and bulk inserts)."""
    assert request.gamma_sigma2 is not None and request.gamma_w is not None
    assert request.sigma2 is not None and request.width is not None
    reg = regime(request.gamma_sigma2, request.gamma_w, request.width, request.rank)
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "sweep_id": sweep_id,
        "created_at": now,
        "queued_at": now,
        "status": RunStatus.queued,
        "attempts": 0,
        "request": request.normalized(),
        "cache_key": request.cache_key(),
        "d": request.d,
        "rank": request.rank,
        "gamma_sigma2": request.gamma_sigma2,
        "gamma_w": request.gamma_w,
        "sigma2": request.sigma2,
        "width": request.width,
        "dynamics": ",".join(request.dynamics),
        "backend_requested": request.backend,
        "regime": reg["regime"],
        "theory_applies": reg["theory_applies"],
        "underparametrised": reg["underparametrised"],
        "progress_step": 0,
        "progress_total": request.steps,
        "threshold": request.threshold,
        "has_comparison": False,
    }


def find_reusable_run(session: Session, cache_key: str) -> Run | None:
    """The newest run of the same normalised request that is queued, running or finished with a result."""
    stmt = (
        select(Run)
        .where(Run.cache_key == cache_key, Run.status.in_(REUSABLE))
        .order_by(Run.created_at.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def locked_run(session: Session, run_id: uuid.UUID) -> Run | None:
    """The run, read again and locked (FOR UPDATE) until the transaction ends; None if there is none."""
    stmt = select(Run).where(Run.id == run_id).with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).first()


def gave_up(attempts: int) -> str:
    """The error of a run failed because ``attempts`` workers started it and none finished it."""
    return (f"gave up after {attempts} attempts: each worker that started this run was lost before it finished "
            "(killed by the task's hard time limit, out of memory, or its machine stopped); see LINDYN_MAX_ATTEMPTS")


def claim_run(
    session: Session, run_id: uuid.UUID, *, fresh_s: float | None = None, max_attempts: int | None = None
) -> Run | None:
    """Mark a queued run running (or take over a running one whose worker was lost); None if it must not run.
    With ``fresh_s``, a running run whose heartbeat is younger than that is left to its live worker (a copy
    of its task delivered again, e.g. by Redis after the visibility timeout, does not run it twice). The rows
    an earlier attempt stored as it went are deleted with the claim: the new attempt writes them again. With
    ``max_attempts``, a run already started that many times is failed (``gave_up``) instead: a run whose
    worker is killed every time (the hard time limit, memory) is not requeued for ever."""
    run = locked_run(session, run_id)
    if run is None or run.status not in ACTIVE:
        return None
    now = utcnow()
    if (fresh_s is not None and run.status == RunStatus.running and run.heartbeat_at is not None
            and now - run.heartbeat_at < timedelta(seconds=fresh_s)):
        return None
    if max_attempts is not None and run.attempts >= max_attempts:
        run.status = RunStatus.failed
        run.error = gave_up(run.attempts)
        run.finished_at = now
        return None
    run.status = RunStatus.running
    run.started_at = now
    run.heartbeat_at = now
    run.finished_at = None
    run.attempts += 1
    run.progress_step = 0
    run.error = None
    session.execute(delete(TrajectoryPoint).where(TrajectoryPoint.run_id == run_id))
    return run


def record_progress(session: Session, run_id: uuid.UUID, step: int, total: int) -> int | None:
    """Write progress; the run's attempt (``attempts``, so its worker can tell the run is still its own), or
    None when it is no longer running (cancelled). One statement (UPDATE ... RETURNING)."""
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.running)
        .values(progress_step=step, progress_total=total)
        .returning(Run.attempts)
    )
    return cast(int | None, session.execute(stmt).scalar_one_or_none())


def cancel_run(session: Session, run: Run) -> bool:
    """Cancel a queued or running run; False if it already finished."""
    stmt = (
        update(Run)
        .where(Run.id == run.id, Run.status.in_(ACTIVE))
        .values(status=RunStatus.cancelled, finished_at=utcnow())
    )
    done = _changed_one(session, stmt)
    session.refresh(run)
    return done


def delete_runs(session: Session, run_ids: Sequence[uuid.UUID]) -> int:
    """Delete runs with their trajectories, summaries and tags, in the caller's transaction; how many runs
    were deleted. A queued or running run is cancelled first (in the same transaction), so a worker that
    runs it finds no running run at its next progress report or when it stores its result
    (``record_progress``, ``store_result``) and writes nothing."""
    ids = list(run_ids)
    if not ids:
        return 0
    session.execute(update(Run).where(Run.id.in_(ids), Run.status.in_(ACTIVE))
                    .values(status=RunStatus.cancelled, finished_at=utcnow()))
    for child in (TrajectoryPoint, RunSummary, RunTag):  # the foreign keys cascade too; explicit is plain
        session.execute(delete(child).where(child.run_id.in_(ids)))
    return cast(CursorResult[Any], session.execute(delete(Run).where(Run.id.in_(ids)))).rowcount


def fail_run(session: Session, run_id: uuid.UUID, message: str) -> bool:
    """Mark a queued or running run failed with a message; a finished or cancelled run is left alone."""
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.status.in_(ACTIVE))
        .values(status=RunStatus.failed, error=message, finished_at=utcnow())
    )
    return _changed_one(session, stmt)


def lock_in_order(session: Session, *where: ColumnElement[bool]) -> list[uuid.UUID]:
    """Lock the runs matching ``where`` in the order of their ids (SELECT ... ORDER BY id FOR UPDATE) and give
    their ids. Every write to several runs takes its row locks this way first (and ``claim_runs`` one by one in
    the same order), so two transactions writing overlapping runs (a sweep's cancel and a worker claiming its
    chunk) wait for each other instead of deadlocking. SQLite locks the whole file: FOR UPDATE is left out."""
    stmt = select(Run.id).where(*where).order_by(Run.id).with_for_update()
    return list(session.scalars(stmt))


def claim_runs(
    session: Session, run_ids: Sequence[uuid.UUID], *, fresh_s: float | None = None, max_attempts: int | None = None
) -> list[Run]:
    """``claim_run`` for each id in the order of the ids (``lock_in_order``'s); the runs that may run."""
    ordered = sorted(set(run_ids))
    claimed = (claim_run(session, run_id, fresh_s=fresh_s, max_attempts=max_attempts) for run_id in ordered)
    return [run for run in claimed if run is not None]


def count_running(session: Session, run_ids: Sequence[uuid.UUID]) -> int:
    """How many of these runs are running (0: all were cancelled, or finished)."""
    stmt = select(func.count()).select_from(Run).where(Run.id.in_(run_ids), Run.status == RunStatus.running)
    return int(session.scalar(stmt) or 0)


def record_batch_progress(session: Session, run_ids: Sequence[uuid.UUID], step: int) -> dict[uuid.UUID, int]:
    """A batch reached ``step``: each of its runs still running has done min(step, its steps). Returns those
    still running, each with its attempt (empty: all were cancelled). One statement (UPDATE ... RETURNING),
    after the rows are locked in id order (``lock_in_order``)."""
    lock_in_order(session, Run.id.in_(run_ids), Run.status == RunStatus.running)
    stmt = (
        update(Run)
        .where(Run.id.in_(run_ids), Run.status == RunStatus.running)
        .values(progress_step=case((Run.progress_total < step, Run.progress_total), else_=step))
        .returning(Run.id, Run.attempts)
        .execution_options(synchronize_session=False)
    )
    return {row[0]: row[1] for row in session.execute(stmt)}


def fail_runs(session: Session, run_ids: Sequence[uuid.UUID], message: str) -> int:
    """``fail_run`` for many runs at once; how many were failed."""
    lock_in_order(session, Run.id.in_(run_ids), Run.status.in_(ACTIVE))
    stmt = (
        update(Run)
        .where(Run.id.in_(run_ids), Run.status.in_(ACTIVE))
        .values(status=RunStatus.failed, error=message, finished_at=utcnow())
    )
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


def _changed_one(session: Session, stmt: Update) -> bool:
    """Execute an UPDATE of one run; True if it matched (its WHERE still held)."""
    result = cast(CursorResult[Any], session.execute(stmt))
    return result.rowcount == 1

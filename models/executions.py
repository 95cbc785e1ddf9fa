"""The record of each task a worker ran (``task_executions``): one row written when the task ends, read by
``lindyn_task_duration_seconds`` on /metrics, and deleted after LINDYN_TASK_HISTORY_DAYS by the workers'
reaper (workers/reliability.py)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from models.base import RunStatus, TaskOutcome, utcnow
from models.tables import TaskExecution

#: the final statuses of a run that stored its result
STORED = (RunStatus.succeeded, RunStatus.diverged)
#: what a task gives as the final status of a run it did not claim (finished, cancelled, or live elsewhere)
SKIPPED = "skipped"


def task_outcome(statuses: Iterable[str]) -> TaskOutcome:
    """The outcome of a task whose runs ended with these statuses (``skipped``: not claimed)."""
    claimed = [s for s in statuses if s != SKIPPED]
    stored = sum(s in STORED for s in claimed)
    if not claimed:
        return TaskOutcome.nothing
    if stored == len(claimed):
        return TaskOutcome.succeeded
    if stored:
        return TaskOutcome.partial
    if all(s == RunStatus.cancelled for s in claimed):
        return TaskOutcome.cancelled
    return TaskOutcome.failed


def record_task_execution(
    session: Session,
    *,
    task: str,
    runs: int,
    outcome: TaskOutcome,
    started_at: datetime,
    finished_at: datetime,
    duration_s: float,
    celery_task_id: str | None = None,
    worker: str | None = None,
) -> TaskExecution:
    """Add the record of a task that ended."""
    row = TaskExecution(
        task=task, celery_task_id=celery_task_id, worker=worker, runs=runs, outcome=outcome,
        started_at=started_at, finished_at=finished_at, duration_s=duration_s,
    )
    session.add(row)
    return row


def prune_task_executions(session: Session, keep_days: float) -> int:
    """Delete the records of tasks that finished more than ``keep_days`` ago; how many."""
    cutoff = utcnow() - timedelta(days=keep_days)
    result = session.execute(delete(TaskExecution).where(TaskExecution.finished_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)

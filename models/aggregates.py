"""What ``GET /metrics`` reads from the database on each scrape, counted by the database in one aggregate
query each: runs by status, and histograms of how long runs and the workers' tasks took."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from models.base import RunStatus
from models.tables import Run, TaskExecution


@dataclass
class DurationSeries:
    """One series of a duration histogram: its labels' values, how many rows, their total duration, and how
    many rows took at most each bucket's upper bound (cumulative, in the buckets' order)."""

    labels: tuple[Any, ...]
    count: int
    total: float
    cumulative: list[int]


def runs_by_status(session: Session) -> dict[str, int]:
    """How many runs have each status (every status, 0 when none)."""
    counts = dict(session.execute(select(Run.status, func.count()).group_by(Run.status)).all())
    return {status.value: int(counts.get(status, 0)) for status in RunStatus}


def run_durations(session: Session, buckets: Sequence[float]) -> list[DurationSeries]:
    """finished_at - started_at (of the last attempt) of the finished runs, a series per status."""
    if session.get_bind().dialect.name == "postgresql":
        duration: Any = func.extract("epoch", Run.finished_at - Run.started_at)
    else:
        duration = (func.julianday(Run.finished_at) - func.julianday(Run.started_at)) * 86400.0
    return _duration_histogram(
        session, [Run.status], duration, buckets, Run.started_at.is_not(None), Run.finished_at.is_not(None)
    )


def task_durations(session: Session, buckets: Sequence[float]) -> list[DurationSeries]:
    """How long the recorded worker tasks took, a series per (Celery task name, outcome)."""
    return _duration_histogram(session, [TaskExecution.task, TaskExecution.outcome], TaskExecution.duration_s,
                               buckets)


def _duration_histogram(
    session: Session,
    labels: list[InstrumentedAttribute[Any]],
    duration: ColumnElement[float] | InstrumentedAttribute[float],
    buckets: Sequence[float],
    *where: ColumnElement[bool],
) -> list[DurationSeries]:
    """The histogram of ``duration`` over the rows matching ``where``, a series per value of ``labels``."""
    columns: list[Any] = [func.count(), func.coalesce(func.sum(duration), 0.0)]
    columns += [func.sum(case((duration <= b, 1), else_=0)) for b in buckets]
    stmt = select(*labels, *columns).where(*where).group_by(*labels)
    out = []
    for row in session.execute(stmt):
        values, (count, total, *cumulative) = row[: len(labels)], row[len(labels):]
        out.append(DurationSeries(tuple(str(v) for v in values), int(count), float(total or 0.0),
                                  [int(c or 0) for c in cumulative]))
    return out

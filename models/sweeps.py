"""What the service does to sweeps: store one with its runs, add up its runs' states, cancel it, read its
runs back (whole, or as plain columns for its table)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, insert, select, update
from sqlalchemy.orm import Session, selectinload

from dynamics import SimulationRequest
from models.base import RUN_STATUSES, RunStatus, utcnow
from models.queries import RUN_RANGES
from models.runs import ACTIVE, delete_runs, lock_in_order, run_row
from models.tables import Run, RunSummary, Sweep, SweepTag

_INSERT_CHUNK = 1000  # runs per bulk INSERT statement


def create_sweep(
    session: Session,
    *,
    name: str | None,
    base_request: dict[str, Any],
    axes: dict[str, Any],
    requests: Sequence[SimulationRequest],
    tags: Mapping[str, str] | None = None,
    refine: Mapping[str, Any] | None = None,
    replicates: Sequence[str] = (),
) -> tuple[Sweep, list[uuid.UUID]]:
    """Store a sweep (with its name and tags) and one queued run per grid point (bulk inserts, in the caller's
    transaction); the sweep and its run ids in the order of ``requests``. The runs get neither the name nor
    the tags: they belong to the sweep, and its runs are found by their sweep_id. With ``refine`` ({metric,
    rounds, budget}) the sweep starts refining (models/refinement.py adds the rounds). ``replicates``: the axes
    that are replicates."""
    sweep = Sweep(id=uuid.uuid4(), name=name, base_request=base_request, axes=axes, total=len(requests),
                  replicates=list(replicates))
    if refine is not None:
        sweep.refine, sweep.refine_round = dict(refine), 0
        sweep.refine_points, sweep.refine_state = [len(requests)], "refining"
    sweep.tag_rows = [SweepTag(key=k, value=v) for k, v in sorted((tags or {}).items())]
    session.add(sweep)
    session.flush()
    rows = [run_row(r, sweep_id=sweep.id) for r in requests]
    for chunk in range(0, len(rows), _INSERT_CHUNK):
        session.execute(insert(Run), rows[chunk : chunk + _INSERT_CHUNK])
    return sweep, [row["id"] for row in rows]


@dataclass
class SweepState:
    """What a sweep's runs add up to: runs per status, when the first started and the last finished."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUN_STATUSES, 0))
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def active(self) -> int:
        return sum(self.counts[s] for s in ACTIVE)

    @property
    def finished(self) -> int:
        return sum(self.counts.values()) - self.active


def sweep_states(session: Session, sweep_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, SweepState]:
    """The state of each sweep, from one grouped query over its runs."""
    states = {sid: SweepState() for sid in sweep_ids}
    if not states:
        return states
    stmt = (
        select(Run.sweep_id, Run.status, func.count(), func.min(Run.started_at), func.max(Run.finished_at))
        .where(Run.sweep_id.in_(list(states)))
        .group_by(Run.sweep_id, Run.status)
    )
    for sweep_id, status, count, started, finished in session.execute(stmt):
        state = states[cast(uuid.UUID, sweep_id)]
        state.counts[status] = count
        if started is not None and (state.started_at is None or started < state.started_at):
            state.started_at = started
        if finished is not None and (state.finished_at is None or finished > state.finished_at):
            state.finished_at = finished
    return states


def cancel_sweep(session: Session, sweep_id: uuid.UUID) -> int:
    """Cancel the sweep's queued and running runs (a running batch stops at its next progress report) and its
    further refinement rounds; finished runs are kept. How many runs were cancelled, plus one when a
    refinement was stopped. The rows are locked in id order first (``lock_in_order``), as a worker claiming
    them does."""
    lock_in_order(session, Run.sweep_id == sweep_id, Run.status.in_(ACTIVE))
    stmt = (
        update(Run)
        .where(Run.sweep_id == sweep_id, Run.status.in_(ACTIVE))
        .values(status=RunStatus.cancelled, finished_at=utcnow())
    )
    stop = (
        update(Sweep).where(Sweep.id == sweep_id, Sweep.refine_state == "refining").values(refine_state="cancelled")
    )
    stopped = cast(CursorResult[Any], session.execute(stop)).rowcount
    return cast(CursorResult[Any], session.execute(stmt)).rowcount + stopped


def delete_sweep(session: Session, sweep_id: uuid.UUID) -> int:
    """Delete a sweep with its runs (``delete_runs``: queued and running ones cancelled first, then their
    trajectories and summaries) and its tags, in the caller's transaction; how many runs were deleted."""
    run_ids = list(session.scalars(select(Run.id).where(Run.sweep_id == sweep_id)))
    deleted = sum(delete_runs(session, run_ids[i : i + 500]) for i in range(0, len(run_ids), 500))
    session.execute(delete(SweepTag).where(SweepTag.sweep_id == sweep_id))
    session.execute(delete(Sweep).where(Sweep.id == sweep_id))
    return deleted


def sweep_runs(session: Session, sweep_id: uuid.UUID) -> list[Run]:
    """The sweep's runs with their summaries loaded (two queries)."""
    stmt = select(Run).where(Run.sweep_id == sweep_id).options(selectinload(Run.summaries))
    return list(session.scalars(stmt))


@dataclass(slots=True)
class TableRun:
    """A sweep's run as its table reads it (service.grid.table), from plain columns: no ORM object, and
    ``request`` holds only the axes' values."""

    id: uuid.UUID
    status: RunStatus
    dynamics: str
    has_comparison: bool
    log_max_distance: float | None
    request: dict[str, Any]
    summaries: list[Any] = field(default_factory=list)  # rows of run_summaries' columns, in result order

    @property
    def dynamics_list(self) -> list[str]:
        return self.dynamics.split(",") if self.dynamics else []


def sweep_table_runs(session: Session, sweep_id: uuid.UUID, axes: Sequence[str]) -> list[TableRun]:
    """The sweep's runs as its table reads them, in two queries of plain columns: the runs, with each axis
    read from its indexed copy of the request (RUN_RANGES; the request's JSON is read only for an axis that
    has none), then every summary of the sweep's runs."""
    indexed = [a for a in axes if a in RUN_RANGES]
    others = [a for a in axes if a not in RUN_RANGES]
    head = (Run.id, Run.status, Run.dynamics, Run.has_comparison, Run.log_max_distance)
    stmt = select(*head, *(Run.__table__.c[a] for a in indexed), *([Run.request] if others else []))
    runs: dict[uuid.UUID, TableRun] = {}
    for row in session.execute(stmt.where(Run.sweep_id == sweep_id)):
        values = dict(zip(indexed, row[len(head) : len(head) + len(indexed)], strict=True))
        if others:
            request = row[-1]
            values.update((a, request.get(a)) for a in others)
        runs[row[0]] = TableRun(row[0], row[1], row[2], row[3], row[4], request=values)
    summaries = (
        select(*RunSummary.__table__.c)
        .join(Run, Run.id == RunSummary.run_id)
        .where(Run.sweep_id == sweep_id)
        .order_by(RunSummary.position)
    )
    for summary in session.execute(summaries):
        if (run := runs.get(summary.run_id)) is not None:  # (not a run stored after the first query)
            run.summaries.append(summary)
    return list(runs.values())

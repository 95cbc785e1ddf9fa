"""What the service does to sweeps: store one with its runs, add up its runs' states, cancel it, read its
runs back."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, insert, select, update
from sqlalchemy.orm import Session, selectinload

from dynamics import SimulationRequest
from models.base import RUN_STATUSES, RunStatus, utcnow
from models.runs import ACTIVE, lock_in_order, run_row
from models.tables import Run, Sweep, SweepTag

_INSERT_CHUNK = 1000  # runs per bulk INSERT statement


def create_sweep(
    session: Session,
    *,
    name: str | None,
    base_request: dict[str, Any],
    axes: dict[str, Any],
    requests: Sequence[SimulationRequest],
    tags: Mapping[str, str] | None = None,
) -> tuple[Sweep, list[uuid.UUID]]:
    """Store a sweep (with its name and tags) and one queued run per grid point (bulk inserts, in the caller's
    transaction); the sweep and its run ids in the order of ``requests``. The runs get neither the name nor
    the tags: they belong to the sweep, and its runs are found by their sweep_id."""
    sweep = Sweep(id=uuid.uuid4(), name=name, base_request=base_request, axes=axes, total=len(requests))
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
    """Cancel the sweep's queued and running runs (a running batch stops at its next progress report);
    finished runs are kept. How many were cancelled. The rows are locked in id order first (``lock_in_order``),
    as a worker claiming them does."""
    lock_in_order(session, Run.sweep_id == sweep_id, Run.status.in_(ACTIVE))
    stmt = (
        update(Run)
        .where(Run.sweep_id == sweep_id, Run.status.in_(ACTIVE))
        .values(status=RunStatus.cancelled, finished_at=utcnow())
    )
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


def sweep_runs(session: Session, sweep_id: uuid.UUID) -> list[Run]:
    """The sweep's runs with their summaries loaded (two queries)."""
    stmt = select(Run).where(Run.sweep_id == sweep_id).options(selectinload(Run.summaries))
    return list(session.scalars(stmt))

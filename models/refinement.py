"""Adaptive refinement of sweeps (a sweep's ``refine``): once every run of a round has finished, the next round's
points (dynamics/refine.py) are stored as queued runs of the sweep.

Exactly once: the round is claimed by one conditional UPDATE (``refine_round = k + 1 where refine_round = k``,
the sweep still refining and none of its runs queued or running), so of two workers storing the last two runs
of a round at once, or a worker and the reaper, one starts the round and the other finds nothing to do. The
claim, the new runs and the sweep's counts are one transaction: a worker that dies before its commit leaves
the round unclaimed, and the reaper (``stalled_refinements``) starts it. A worker that dies after its commit
leaves queued runs, which the reaper sends again as it does any stranded run (models/reaper.py).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, exists, insert, select, update
from sqlalchemy.orm import Session

from dynamics import COMPARISON_METRICS, Limits, SimulationRequest
from dynamics.refine import Point, refine, round_budget
from dynamics.request import NUMERIC_FIELDS, InvalidRequest, parse_request
from models.runs import ACTIVE, run_row
from models.sweeps import sweep_runs
from models.tables import Run, Sweep

log = logging.getLogger(__name__)
#: the metrics of the GD / self-consistent comparison (columns of the run, not of a summary)
COMPARISON: tuple[str, ...] = tuple(q.name for q in COMPARISON_METRICS)


def metric_value(run: Run, metric: str) -> float | None:
    """The run's value of ``<dynamics>.<metric>`` (or a comparison metric); None without one (not finished)."""
    if metric in COMPARISON:
        v = getattr(run, metric) if run.has_comparison else None
        return float(v) if v is not None and math.isfinite(v) else None
    dynamics, name = metric.split(".", 1)
    for s in run.summaries:
        if s.dynamics == dynamics:
            v = getattr(s, name)
            return float(v) if v is not None and math.isfinite(v) else None
    return None


def _no_active_runs(sweep_id: Any) -> Any:
    """No run of the sweep (an id, or the sweeps.id column in a correlated query) is queued or running."""
    return ~exists().where(Run.sweep_id == sweep_id, Run.status.in_(ACTIVE))


def advance_refinement(
    session: Session, sweep_id: uuid.UUID, limits: Limits
) -> tuple[list[uuid.UUID], list[SimulationRequest]]:
    """Start the sweep's next refinement round if it is refining and none of its runs is queued or running:
    claim the round, store its points as queued runs, count them. The new run ids and their requests (to
    send; none when there was nothing to start). In the caller's transaction."""
    sweep = session.get(Sweep, sweep_id, populate_existing=True)
    if sweep is None or sweep.refine_state != "refining" or sweep.refine is None:
        return [], []
    k = sweep.refine_round
    claim = (
        update(Sweep)
        .where(Sweep.id == sweep_id, Sweep.refine_round == k, Sweep.refine_state == "refining",
               _no_active_runs(sweep_id))
        .values(refine_round=k + 1)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], session.execute(claim)).rowcount != 1:
        return [], []
    spec = sweep.refine
    rounds, budget = int(spec["rounds"]), int(spec["budget"])
    counts = list(sweep.refine_points or [sweep.total])
    names = list(sweep.axes)
    runs = sweep_runs(session, sweep_id)
    values: dict[Point, float | None] = {}
    for run in runs:
        point = tuple(run.request.get(a) for a in names)
        if all(v is not None for v in point):
            values[cast(Point, point)] = metric_value(run, spec["metric"])
    new = refine([sweep.axes[a] for a in names], values, round_budget(budget, sum(counts[1:]), rounds - k),
                 [NUMERIC_FIELDS[a] is int for a in names])
    requests: list[SimulationRequest] = []
    for point in new:
        try:
            requests.append(parse_request({**sweep.base_request, **dict(zip(names, point, strict=True))}, limits))
        except InvalidRequest as exc:  # e.g. a rank above a refined d: that point is left out
            log.warning("sweep %s: refined point %s left out: %s", sweep_id, point, exc)
    rows = [run_row(r, sweep_id=sweep_id) for r in requests]
    if rows:
        session.execute(insert(Run), rows)
    last = k + 1 >= rounds or not rows or sum(counts[1:]) + len(rows) >= budget
    session.execute(
        update(Sweep)
        .where(Sweep.id == sweep_id)
        .values(total=Sweep.total + len(rows), refine_points=[*counts, len(rows)],
                refine_state="done" if last else "refining")
        .execution_options(synchronize_session=False)
    )
    log.info("sweep %s: refinement round %d of %d adds %d points", sweep_id, k + 1, rounds, len(rows))
    return [row["id"] for row in rows], requests


def refining_sweeps_of(session: Session, run_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """The refining sweeps these runs belong to."""
    if not run_ids:
        return []
    stmt = (
        select(Sweep.id)
        .where(Sweep.refine_state == "refining", Sweep.id.in_(select(Run.sweep_id).where(Run.id.in_(list(run_ids)))))
    )
    return list(session.scalars(stmt))


def stalled_refinements(session: Session, limit: int = 100) -> list[uuid.UUID]:
    """Refining sweeps none of whose runs is queued or running: a round whose start was lost (its worker died
    between storing the last run and starting the next round)."""
    stmt = select(Sweep.id).where(Sweep.refine_state == "refining", _no_active_runs(Sweep.id)).limit(limit)
    return list(session.scalars(stmt))


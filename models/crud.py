"""What the service and the workers do to the tables: create and find runs, move a run through its
statuses, create a sweep with its runs and add up their states, store a result (replacing any earlier
copy) and read a trajectory back."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import CursorResult, Row, Update, case, delete, func, insert, select, update
from sqlalchemy.orm import Session, selectinload

from dynamics import METRIC_COLUMNS, TRAJECTORY_COLUMNS, SimulationRequest, SimulationResult, regime
from models.base import RUN_STATUSES, RunStatus, utcnow
from models.tables import REUSABLE, Run, RunSummary, Sweep, SweepTag, TrajectoryPoint

ACTIVE = (RunStatus.queued.value, RunStatus.running.value)
_INSERT_CHUNK = 1000  # runs per bulk INSERT statement


# ---- runs ------------------------------------------------------------------------------------------------
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
        "status": RunStatus.queued.value,
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


def _locked_run(session: Session, run_id: uuid.UUID) -> Run | None:
    stmt = select(Run).where(Run.id == run_id).with_for_update().execution_options(populate_existing=True)
    return session.scalars(stmt).first()


def claim_run(session: Session, run_id: uuid.UUID, *, fresh_s: float | None = None) -> Run | None:
    """Mark a queued run running (or take over a running one whose worker was lost); None if it must not run.
    With ``fresh_s``, a running run whose heartbeat is younger than that is left to its live worker (a copy
    of its task delivered again, e.g. by Redis after the visibility timeout, does not run it twice)."""
    run = _locked_run(session, run_id)
    if run is None or run.status not in ACTIVE:
        return None
    now = utcnow()
    if (fresh_s is not None and run.status == RunStatus.running.value and run.heartbeat_at is not None
            and now - run.heartbeat_at < timedelta(seconds=fresh_s)):
        return None
    run.status = RunStatus.running.value
    run.started_at = now
    run.heartbeat_at = now
    run.finished_at = None
    run.attempts += 1
    run.progress_step = 0
    run.error = None
    return run


def record_progress(session: Session, run_id: uuid.UUID, step: int, total: int) -> bool:
    """Write progress; False when the run is no longer running (cancelled)."""
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.running.value)
        .values(progress_step=step, progress_total=total)
    )
    return _changed_one(session, stmt)


def cancel_run(session: Session, run: Run) -> bool:
    """Cancel a queued or running run; False if it already finished."""
    stmt = (
        update(Run)
        .where(Run.id == run.id, Run.status.in_(ACTIVE))
        .values(status=RunStatus.cancelled.value, finished_at=utcnow())
    )
    done = _changed_one(session, stmt)
    session.refresh(run)
    return done


def fail_run(session: Session, run_id: uuid.UUID, message: str) -> bool:
    """Mark a queued or running run failed with a message; a finished or cancelled run is left alone."""
    stmt = (
        update(Run)
        .where(Run.id == run_id, Run.status.in_(ACTIVE))
        .values(status=RunStatus.failed.value, error=message, finished_at=utcnow())
    )
    return _changed_one(session, stmt)


def claim_runs(session: Session, run_ids: Sequence[uuid.UUID], *, fresh_s: float | None = None) -> list[Run]:
    """``claim_run`` for each id (in a fixed order, so two workers lock rows alike); the runs that may run."""
    claimed = (claim_run(session, run_id, fresh_s=fresh_s) for run_id in sorted(set(run_ids)))
    return [run for run in claimed if run is not None]


def count_running(session: Session, run_ids: Sequence[uuid.UUID]) -> int:
    """How many of these runs are running (0: all were cancelled, or finished)."""
    stmt = select(func.count()).select_from(Run).where(Run.id.in_(run_ids), Run.status == RunStatus.running.value)
    return int(session.scalar(stmt) or 0)


def record_batch_progress(session: Session, run_ids: Sequence[uuid.UUID], step: int) -> int:
    """A batch reached ``step``: each of its runs still running has done min(step, its steps). Returns how
    many are still running (0: all were cancelled)."""
    stmt = (
        update(Run)
        .where(Run.id.in_(run_ids), Run.status == RunStatus.running.value)
        .values(progress_step=case((Run.progress_total < step, Run.progress_total), else_=step))
    )
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


def fail_runs(session: Session, run_ids: Sequence[uuid.UUID], message: str) -> int:
    """``fail_run`` for many runs at once; how many were failed."""
    stmt = (
        update(Run)
        .where(Run.id.in_(run_ids), Run.status.in_(ACTIVE))
        .values(status=RunStatus.failed.value, error=message, finished_at=utcnow())
    )
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


# ---- sweeps ----------------------------------------------------------------------------------------------
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
    finished runs are kept. How many were cancelled."""
    stmt = (
        update(Run)
        .where(Run.sweep_id == sweep_id, Run.status.in_(ACTIVE))
        .values(status=RunStatus.cancelled.value, finished_at=utcnow())
    )
    return cast(CursorResult[Any], session.execute(stmt)).rowcount


def sweep_runs(session: Session, sweep_id: uuid.UUID) -> list[Run]:
    """The sweep's runs with their summaries loaded (two queries)."""
    stmt = select(Run).where(Run.sweep_id == sweep_id).options(selectinload(Run.summaries))
    return list(session.scalars(stmt))


# ---- results ---------------------------------------------------------------------------------------------
def store_result(session: Session, run_id: uuid.UUID, result: SimulationResult) -> RunStatus | None:
    """Replace the run's summaries and trajectory with ``result`` and set its final status, in the caller's
    transaction. None (nothing written) when the run is no longer running, e.g. cancelled meanwhile."""
    run = _locked_run(session, run_id)
    if run is None or run.status != RunStatus.running.value:
        return None
    session.execute(delete(TrajectoryPoint).where(TrajectoryPoint.run_id == run_id))
    session.execute(delete(RunSummary).where(RunSummary.run_id == run_id))
    points = trajectory_rows(run_id, result)
    if points:
        session.execute(insert(TrajectoryPoint), points)
    summaries = [
        {"run_id": run_id, "dynamics": name, "position": i, **summary.as_dict()}
        for i, (name, summary) in enumerate(result.summaries.items())
    ]
    if summaries:
        session.execute(insert(RunSummary), summaries)

    status = RunStatus.diverged if result.diverged else RunStatus.succeeded
    comparison = result.comparison.as_dict() if result.comparison is not None else {}
    run.status = status.value
    run.finished_at = utcnow()
    run.progress_step = max((s.steps_run for s in result.summaries.values()), default=run.progress_step)
    run.lr = _finite(result.lr)
    run.threshold = _finite(result.threshold)
    run.backend = result.backend
    run.device = result.device
    run.timings = {k: float(v) for k, v in result.timings.items()}
    run.regime = result.regime["regime"]
    run.theory_applies = bool(result.regime["theory_applies"])
    run.underparametrised = bool(result.regime["underparametrised"])
    run.has_comparison = result.comparison is not None
    run.max_distance = comparison.get("max_distance")
    run.log_max_distance = comparison.get("log_max_distance")
    run.error = None
    return status


def trajectory_rows(run_id: uuid.UUID, result: SimulationResult) -> list[dict[str, Any]]:
    """The trajectory_points rows of a result: the union of the steps with metrics, spectrum or distance."""
    rows: list[dict[str, Any]] = []
    distance: dict[int, float | None] = {}
    if result.comparison is not None:
        distance = {int(s): _nan_to_none(x) for s, x in zip(result.comparison.step, result.comparison.distance)}
    for name, traj in result.trajectories.items():
        by_step: dict[int, dict[str, Any]] = {}

        def row(step: int) -> dict[str, Any]:
            if step not in by_step:
                by_step[step] = {
                    "run_id": run_id,
                    "dynamics": name,
                    "step": step,
                    "recorded": False,
                    **dict.fromkeys(METRIC_COLUMNS),
                    "spectrum": None,
                    "distance": None,
                }
            return by_step[step]

        metrics = {col: np.asarray(traj.metrics[col], dtype=np.float64) for col in METRIC_COLUMNS}
        for i, step in enumerate(np.asarray(traj.step).tolist()):
            r = row(int(step))
            r["recorded"] = True
            for col in METRIC_COLUMNS:
                r[col] = _nan_to_none(metrics[col][i])
        for j, step in enumerate(np.asarray(traj.spectrum_steps).tolist()):
            row(int(step))["spectrum"] = encode_spectrum(traj.spectrum[j])
        if name == "gd":
            for step, dist in distance.items():
                row(step)["distance"] = dist
        rows.extend(by_step[s] for s in sorted(by_step))
    return rows


def trajectory_chunks(
    session: Session, run_id: uuid.UUID, names: Sequence[str], *, spectrum: bool = False, chunk_rows: int = 4096,
) -> Iterator[Sequence[Row[Any]]]:
    """The rows of a run's trajectory for the dynamics ``names`` (in that order), ``chunk_rows`` at a time,
    read from the database as they are asked for (a server-side cursor on PostgreSQL), so a long trajectory
    is never whole in memory. One row per (dynamics, recorded step), steps ascending: (dynamics, step,
    *METRIC_COLUMNS), then the spectrum's bytes (or None) with ``spectrum``."""
    cols: list[Any] = [TrajectoryPoint.dynamics, TrajectoryPoint.step]
    cols += [getattr(TrajectoryPoint, c) for c in METRIC_COLUMNS]
    if spectrum:
        cols.append(TrajectoryPoint.spectrum)
    for name in names:
        stmt = (
            select(*cols)
            .where(TrajectoryPoint.run_id == run_id, TrajectoryPoint.dynamics == name, TrajectoryPoint.recorded)
            .order_by(TrajectoryPoint.step)
            .execution_options(yield_per=chunk_rows)
        )
        yield from session.execute(stmt).partitions()


def spectrum_width(session: Session, run: Run) -> int:
    """How many singular values the run's stored spectra hold (its d), or 0 if it recorded none."""
    stmt = (
        select(func.length(TrajectoryPoint.spectrum))
        .where(TrajectoryPoint.run_id == run.id, TrajectoryPoint.spectrum.is_not(None))
        .limit(1)
    )
    return int(session.scalar(stmt) or 0) // 8


def trajectory_columns(
    session: Session, run: Run, dynamics: Sequence[str] | None = None, *, spectrum: bool = False
) -> dict[str, list[Any]]:
    """Long format, as ``SimulationResult.trajectory_columns``: columns TRAJECTORY_COLUMNS, one row per
    (dynamics, recorded step), dynamics in the run's order. Non-finite values come back as None (NaN) or
    as stored (+-inf). With ``spectrum``, a column ``spectrum``: the singular values (a list, s_1 first)
    where they were recorded at that step, else None. Whole in memory: exports stream ``trajectory_chunks``."""
    names = [n for n in run.dynamics_list if dynamics is None or n in dynamics]
    out: dict[str, list[Any]] = {c: [] for c in (*TRAJECTORY_COLUMNS, *(["spectrum"] if spectrum else []))}
    for chunk in trajectory_chunks(session, run.id, names, spectrum=spectrum):
        for rec in chunk:
            for c, v in zip(TRAJECTORY_COLUMNS, rec):
                out[c].append(v)
            if spectrum:
                blob = rec[-1]
                out["spectrum"].append(None if blob is None else decode_spectrum(blob).tolist())
    return out


# ---- the spectrum column -------------------------------------------------------------------------------
def encode_spectrum(values: Any) -> bytes:
    """Singular values as float64 little-endian bytes (8 bytes per value, the same on every database)."""
    return np.asarray(values, dtype="<f8").tobytes()


def decode_spectrum(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8").astype(np.float64)


def _changed_one(session: Session, stmt: Update) -> bool:
    """Execute an UPDATE of one run; True if it matched (its WHERE still held)."""
    result = cast(CursorResult[Any], session.execute(stmt))
    return result.rowcount == 1


def _nan_to_none(x: Any) -> float | None:
    f = float(x)
    return None if math.isnan(f) else f


def _finite(x: Any) -> float | None:
    f = float(x)
    return f if math.isfinite(f) else None

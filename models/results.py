"""A run's result: its summaries and trajectory stored (replacing any earlier copy) and read back, a batch
at a time or whole, and the spectrum column's codec (float64 little-endian bytes)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Row, delete, func, insert, select
from sqlalchemy.orm import Session

from dynamics import METRIC_COLUMNS, TRAJECTORY_COLUMNS, SimulationResult, Trajectory
from models.base import RunStatus, utcnow
from models.runs import locked_run
from models.tables import Run, RunSummary, TrajectoryPoint


def store_result(session: Session, run_id: uuid.UUID, result: SimulationResult) -> RunStatus | None:
    """Replace the run's summaries and trajectory with ``result`` and set its final status, in the caller's
    transaction. None (nothing written) when the run is no longer running, e.g. cancelled meanwhile. (The
    regime is not written here: it follows from the parameters and was stored with the run, ``run_row``.)"""
    run = locked_run(session, run_id)
    if run is None or run.status != RunStatus.running:
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
    run.status = status
    run.finished_at = utcnow()
    run.progress_step = result.steps_done if result.steps_done is not None else run.progress_step
    run.lr = _finite(result.lr)
    run.threshold = _finite(result.threshold)
    run.backend = result.backend
    run.device = result.device
    run.timings = {k: float(v) for k, v in result.timings.items()}
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
        rows.extend(dynamics_rows(run_id, name, traj, distance if name == "gd" else {}))
    return rows


def dynamics_rows(
    run_id: uuid.UUID, name: str, traj: Trajectory, distance: dict[int, float | None] | None = None
) -> list[dict[str, Any]]:
    """The trajectory_points rows of one dynamics' trajectory (whole, or a piece of it as a run goes), steps
    ascending: the union of the steps with metrics, spectrum or ``distance`` (step -> GD/SC distance)."""
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
    for step, dist in (distance or {}).items():
        row(step)["distance"] = dist
    return [by_step[s] for s in sorted(by_step)]


def store_live_rows(session: Session, pieces: Sequence[tuple[uuid.UUID, str, Trajectory]]) -> int:
    """Add what running runs recorded since their last write (``pieces``: (run id, dynamics, trajectory
    piece)) in one INSERT, in the caller's transaction, so their trajectories can be read while they run; how
    many rows were sent. The caller checked, in this transaction, that each run is still running the attempt
    whose rows these are (``record_progress``'s answer): a run claimed again starts afresh (its claim deleted
    the old rows). A row already stored at the same (run, dynamics, step) is kept (ON CONFLICT DO NOTHING on
    PostgreSQL and SQLite): within one attempt its values are the same, so a write retried after a dropped
    connection never doubles a row. ``store_result`` replaces them all at the end."""
    rows = [row for run_id, name, traj in pieces for row in dynamics_rows(run_id, name, traj)]
    if not rows:
        return 0
    session.execute(_insert_new_points(session), rows)
    return len(rows)


def _insert_new_points(session: Session) -> Any:
    """INSERT INTO trajectory_points that skips rows whose key is already stored (another database: a plain
    INSERT)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(TrajectoryPoint).on_conflict_do_nothing()
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(TrajectoryPoint).on_conflict_do_nothing()
    return insert(TrajectoryPoint)


def trajectory_chunks(
    session: Session, run_id: uuid.UUID, names: Sequence[str], *, spectrum: bool = False, chunk_rows: int = 4096,
    after_step: int = -1,
) -> Iterator[Sequence[Row[Any]]]:
    """The rows of a run's trajectory for the dynamics ``names`` (in that order), ``chunk_rows`` at a time,
    read from the database as they are asked for (a server-side cursor on PostgreSQL), so a long trajectory
    is never whole in memory. One row per (dynamics, recorded step), steps ascending: (dynamics, step,
    *METRIC_COLUMNS), then the spectrum's bytes (or None) with ``spectrum``. ``after_step``: only the rows
    at later steps (what a live reader has not seen yet)."""
    cols: list[Any] = [TrajectoryPoint.dynamics, TrajectoryPoint.step]
    cols += [getattr(TrajectoryPoint, c) for c in METRIC_COLUMNS]
    if spectrum:
        cols.append(TrajectoryPoint.spectrum)
    for name in names:
        stmt = (
            select(*cols)
            .where(TrajectoryPoint.run_id == run_id, TrajectoryPoint.dynamics == name, TrajectoryPoint.recorded,
                   TrajectoryPoint.step > after_step)
            .order_by(TrajectoryPoint.step)
            .execution_options(yield_per=chunk_rows)
        )
        yield from session.execute(stmt).partitions()


def live_rows(session: Session, run: Run, after_step: int = -1) -> list[Any]:
    """The recorded rows of the run after ``after_step``, every dynamics read in one statement (one snapshot:
    a worker's write of all its dynamics is seen whole or not at all): (dynamics, step, *METRIC_COLUMNS,
    spectrum bytes or None), in the run's dynamics order, steps ascending. Within one attempt a later write
    only adds later steps, so the largest step read is where a live reader goes on from."""
    cols: list[Any] = [TrajectoryPoint.dynamics, TrajectoryPoint.step]
    cols += [getattr(TrajectoryPoint, c) for c in METRIC_COLUMNS]
    stmt = select(*cols, TrajectoryPoint.spectrum).where(
        TrajectoryPoint.run_id == run.id, TrajectoryPoint.recorded, TrajectoryPoint.step > after_step
    )
    order = {name: i for i, name in enumerate(run.dynamics_list)}
    rows: list[Any] = list(session.execute(stmt).all())
    return sorted(rows, key=lambda r: (order.get(r[0], len(order)), r[1]))


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


def stored_spectra(session: Session, run: Run) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """dynamics -> (steps, singular values (n, d)) of the steps whose spectrum was recorded, in step order."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in run.dynamics_list:
        stmt = (
            select(TrajectoryPoint.step, TrajectoryPoint.spectrum)
            .where(
                TrajectoryPoint.run_id == run.id,
                TrajectoryPoint.dynamics == name,
                TrajectoryPoint.spectrum.is_not(None),
            )
            .order_by(TrajectoryPoint.step)
        )
        rows = session.execute(stmt).all()
        steps = np.array([r[0] for r in rows], dtype=np.int64)
        if rows:
            values = np.stack([decode_spectrum(r[1]) for r in rows if r[1] is not None])
        else:
            values = np.empty((0, run.d), dtype=np.float64)
        out[name] = (steps, values)
    return out


# ---- the spectrum column -------------------------------------------------------------------------------
def encode_spectrum(values: Any) -> bytes:
    """Singular values as float64 little-endian bytes (8 bytes per value, the same on every database)."""
    return np.asarray(values, dtype="<f8").tobytes()


def decode_spectrum(blob: bytes) -> np.ndarray:
    """The singular values of ``encode_spectrum``'s bytes (float64)."""
    return np.frombuffer(blob, dtype="<f8").astype(np.float64)


def _nan_to_none(x: Any) -> float | None:
    f = float(x)
    return None if math.isnan(f) else f


def _finite(x: Any) -> float | None:
    f = float(x)
    return f if math.isfinite(f) else None

"""Sweeps' grids: expand the axes into validated requests, group them into worker tasks, and lay the
finished runs out as a table (one row per grid point)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from dynamics import DYNAMICS, SUMMARY_METRICS, Limits, SimulationRequest
from dynamics.request import NUMERIC_FIELDS, OTHER_FORM, InvalidRequest, parse_request
from models import Run
from models.refinement import COMPARISON
from models.sweeps import TableRun
from service.errors import field_error
from service.schemas.runs import finite_or_none
from service.schemas.sweeps import AxisSpec, RefineSpec, SweepCreate

#: every numeric request field may be an axis: its name and type (an axis on one form of a quantity,
#: OTHER_FORM, removes the other from the base)
AXIS_FIELDS: dict[str, type] = NUMERIC_FIELDS
#: the axes that are replicates unless a sweep names its own (``replicates``): the seeds
REPLICATE_FIELDS: tuple[str, ...] = ("task_seed", "seed")
#: bad grid points reported in one 422
MAX_REPORTED_POINTS = 10


class GridError(Exception):
    """The sweep cannot be run as submitted; ``details`` are 422 entries (loc, field, msg, type)."""

    def __init__(self, details: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(d["msg"] for d in details))
        self.details = details


@dataclass
class Grid:
    """The validated grid: each axis's values (as the requests hold them), and one request per point in
    grid order (the last axis varies fastest)."""

    axes: dict[str, list[Any]]
    requests: list[SimulationRequest]
    #: the base as every point uses it: without the keys an axis gives (stored as the sweep's base, so nothing
    #: stored went unvalidated)
    base: dict[str, Any] = field(default_factory=dict)
    #: the axes that are replicates, in the axes' order
    replicates: list[str] = field(default_factory=list)


#: significant digits a linspace axis's values are rounded to, so that a grid point is stored (and found by
#: ``GET /v1/runs?gamma_sigma2=-1.3``) as -1.3, not as linspace's -1.3000000000000003
AXIS_DIGITS = 12


def snap(value: float) -> float:
    """``value`` rounded to AXIS_DIGITS significant digits (0.1 + 0.2 -> 0.3)."""
    return float(f"{value:.{AXIS_DIGITS}g}")


def axis_values(spec: AxisSpec) -> list[Any]:
    """An axis's values: ``values`` as given, or ``linspace: [start, stop, n]`` rounded by ``snap``."""
    if spec.values is not None:
        return list(spec.values)
    assert spec.linspace is not None
    start, stop, n = spec.linspace
    return [snap(float(v)) for v in np.linspace(start, stop, n)]


def expand(body: SweepCreate, limits: Limits, max_points: int) -> Grid:
    """Every grid point as a validated request; GridError (nothing to store) when an axis is not a numeric
    request field, the grid is larger than ``max_points``, or any point is invalid (each named)."""
    _check_axes(body, max_points)
    replicates = replicate_axes(body)
    names = list(body.axes)
    values = [axis_values(body.axes[a]) for a in names]
    base = {k: v for k, v in body.base.items() if k not in body.axes and OTHER_FORM.get(k) not in body.axes}
    requests: list[SimulationRequest] = []
    errors: list[dict[str, Any]] = []
    bad_points = 0
    base_errors: set[tuple[str, str]] = set()  # a fault of the base is reported at its first point only
    canonical: list[list[Any]] = [list(v) for v in values]
    for index in itertools.product(*(range(len(v)) for v in values)):
        point = {a: values[j][i] for j, (a, i) in enumerate(zip(names, index, strict=True))}
        try:
            request: SimulationRequest = parse_request({**base, **point}, limits)
        except InvalidRequest as exc:
            bad_points += 1
            for error in _point_errors(exc, point, names):
                key = (repr(error["loc"]), error["reason"])
                if error["loc"][1] == "axes" or key not in base_errors:
                    base_errors.add(key)
                    errors.append({k: v for k, v in error.items() if k != "reason"})
            if bad_points >= MAX_REPORTED_POINTS:
                break
            continue
        for j, (a, i) in enumerate(zip(names, index, strict=True)):
            canonical[j][i] = getattr(request, a)  # e.g. 12.0 given for d is 12
        requests.append(request)
    if errors:
        raise GridError(errors)
    for a, vals in zip(names, canonical, strict=True):
        seen = set()
        for v in vals:
            if v in seen:
                raise GridError([field_error(["body", "axes", a], a, f"axis {a} has the value {v} twice")])
            seen.add(v)
    grid = Grid(axes=dict(zip(names, canonical, strict=True)), requests=requests, base=base,
                replicates=replicates)
    if body.refine is not None:
        check_refine(body.refine, grid, max_points)
    return grid


def refine_metrics(requests: Sequence[SimulationRequest]) -> list[str]:
    """The metrics a refinement may follow: ``<dynamics>.<metric>`` for every numeric summary metric of every
    requested dynamics, and the comparison's (log_max_distance, ...) when gd and self_consistent both run."""
    ran = {name for r in requests for name in r.dynamics}
    out = [f"{name}.{q.name}" for name in DYNAMICS if name in ran for q in SUMMARY_METRICS if q.numeric]
    return [*out, *COMPARISON] if {"gd", "self_consistent"} <= ran else out


def check_refine(spec: RefineSpec, grid: Grid, max_points: int) -> None:
    """GridError when the refinement cannot run on this grid: not one or two axes, an axis with one value,
    a metric the runs will not have, or a budget that takes the sweep over ``max_points``."""
    errors = []
    if len(grid.axes) > 2:
        errors.append(field_error(["body", "refine"], "refine", f"refinement needs one or two axes; the sweep has "
                                  f"{len(grid.axes)} ({', '.join(grid.axes)})"))
    for a, vals in grid.axes.items():
        if len(vals) < 2:
            errors.append(field_error(["body", "axes", a], a, f"axis {a} has one value: refinement needs at least "
                                      "two on every axis (cells between them to split)"))
    metrics = refine_metrics(grid.requests)
    if spec.metric not in metrics:
        errors.append(field_error(["body", "refine", "metric"], "metric", f"{spec.metric!r} is not a summary metric "
                                  f"of a requested dynamics; choose one of {', '.join(metrics)}"))
    if len(grid.requests) + spec.budget > max_points:
        errors.append(field_error(["body", "refine", "budget"], "budget", f"budget = {spec.budget} with the "
                                  f"{len(grid.requests)} grid points is over the limit of {max_points} points"))
    if errors:
        raise GridError(errors)


def replicate_axes(body: SweepCreate) -> list[str]:
    """The sweep's replicate axes in the axes' order: those it names (each must be one of its axes), else its
    axes over REPLICATE_FIELDS. GridError naming ``replicates`` otherwise."""
    if body.replicates is None:
        return [a for a in body.axes if a in REPLICATE_FIELDS]
    errors = [field_error(["body", "replicates"], "replicates", f"{a!r} is not an axis of this sweep (its axes: "
                          f"{', '.join(body.axes)})") for a in body.replicates if a not in body.axes]
    if len(set(body.replicates)) != len(body.replicates):
        errors.append(field_error(["body", "replicates"], "replicates", "an axis is named twice"))
    if errors:
        raise GridError(errors)
    return [a for a in body.axes if a in body.replicates]


def _check_axes(body: SweepCreate, max_points: int) -> None:
    errors = []
    for a in body.axes:
        if a not in AXIS_FIELDS:
            errors.append(field_error(["body", "axes", a], a, f"{a} is not a numeric request field; an axis is one of "
                                 f"{', '.join(AXIS_FIELDS)}"))
        elif OTHER_FORM.get(a) in body.axes and a < OTHER_FORM[a]:
            errors.append(field_error(["body", "axes", a], a, f"axes {a} and {OTHER_FORM[a]} give the same quantity "
                                 "twice: give one of them"))
    if errors:
        raise GridError(errors)
    size = math.prod(spec.size for spec in body.axes.values())
    if size > max_points:
        shape = " x ".join(str(spec.size) for spec in body.axes.values())
        raise GridError([field_error(["body", "axes"], "axes", f"the grid has {size} points ({shape}), over the limit "
                                f"of {max_points}")])


def _point_errors(exc: InvalidRequest, point: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    where = ", ".join(f"{a} = {v}" for a, v in point.items())
    out = []
    for p in exc.problems:
        loc = ["body", "axes", p.field] if p.field in names else ["body", "base", *p.loc]
        reason = p.reason
        if reason.startswith("give either ") and not reason.endswith("not both"):  # neither form given
            reason += " (in the base or as an axis)"
        out.append({**field_error(loc, p.field, f"grid point {where}: {reason}", p.kind), "point": point,
                    "reason": reason})
    return out
    return out


# ---- the table -------------------------------------------------------------------------------------------
_ARROW = {int: pa.int64(), float: pa.float64()}
#: a run as the table reads it: the ORM object, or its plain columns (models.sweeps.sweep_table_runs)
R = TypeVar("R", Run, TableRun)
#: the summary metrics (dynamics.SUMMARY_METRICS, as /v1/runs serves them) and their Parquet types
_SUMMARY_TYPES: dict[str, pa.DataType] = {q.name: _ARROW.get(q.type, pa.string()) for q in SUMMARY_METRICS}


def grid_order(axes: dict[str, list[Any]], runs: Sequence[R]) -> list[R]:
    """The runs in grid order (the last axis varies fastest), by their requests' values on the axes; the points
    a refinement added (off the grid) after them, in increasing order of their values."""
    names = list(axes)
    position = {tuple(vals): i for i, vals in enumerate(itertools.product(*axes.values()))}

    def key(run: R) -> tuple[int, tuple[Any, ...]]:
        point = tuple(run.request.get(a) for a in names)
        at = position.get(point)
        return (at, ()) if at is not None else (len(position), point)

    return sorted(runs, key=key)


def table(axes: dict[str, list[Any]], runs: Sequence[R]) -> tuple[dict[str, list[Any]], dict[str, pa.DataType]]:
    """One row per grid point, in grid order: the axes' values, run id and status, ``<dynamics>.<metric>``
    for every summary metric of every dynamics (null until the run finished), and ``log_max_distance``
    where GD and self-consistent both ran. Returns the columns and their Parquet types."""
    names = list(axes)
    ordered = grid_order(axes, runs)
    ran = {name for r in runs for name in r.dynamics_list}
    dynamics = [name for name in DYNAMICS if name in ran]
    compare = "gd" in ran and "self_consistent" in ran
    types: dict[str, pa.DataType] = {a: _ARROW[AXIS_FIELDS[a]] for a in names}
    types.update(run_id=pa.string(), status=pa.string())
    for name in dynamics:
        types.update({f"{name}.{metric}": t for metric, t in _SUMMARY_TYPES.items()})
    if compare:
        types["log_max_distance"] = pa.float64()
    columns: dict[str, list[Any]] = {c: [] for c in types}
    for run in ordered:
        for a in names:
            columns[a].append(run.request.get(a))
        columns["run_id"].append(str(run.id))
        columns["status"].append(run.status)
        summaries = {s.dynamics: s for s in run.summaries}
        for name in dynamics:
            s = summaries.get(name)
            for metric in _SUMMARY_TYPES:
                columns[f"{name}.{metric}"].append(finite_or_none(getattr(s, metric)) if s is not None else None)
        if compare:
            columns["log_max_distance"].append(finite_or_none(run.log_max_distance) if run.has_comparison else None)
    return columns, types

"""Sweeps' grids: expand the axes into validated requests, group them into worker tasks, and lay the
finished runs out as a table (one row per grid point)."""

from __future__ import annotations

import itertools
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from dynamics import DYNAMICS, SUMMARY_METRICS, Limits, SimulationRequest
from dynamics.request import NUMERIC_FIELDS, OTHER_FORM, InvalidRequest, parse_request, run_bytes
from dynamics.simulate import batch_key
from models import Run
from service.errors import field_error
from service.schemas.runs import finite_or_none
from service.schemas.sweeps import AxisSpec, SweepCreate

#: every numeric request field may be an axis: its name and type (an axis on one form of a quantity,
#: OTHER_FORM, removes the other from the base)
AXIS_FIELDS: dict[str, type] = NUMERIC_FIELDS
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


def axis_values(spec: AxisSpec) -> list[Any]:
    if spec.values is not None:
        return list(spec.values)
    assert spec.linspace is not None
    start, stop, n = spec.linspace
    return [float(v) for v in np.linspace(start, stop, n)]


def expand(body: SweepCreate, limits: Limits, max_points: int) -> Grid:
    """Every grid point as a validated request; GridError (nothing to store) when an axis is not a numeric
    request field, the grid is larger than ``max_points``, or any point is invalid (each named)."""
    _check_axes(body, max_points)
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
    return Grid(axes=dict(zip(names, canonical, strict=True)), requests=requests, base=base)


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
        out.append({**field_error(loc, p.field, f"grid point {where}: {p.reason}", p.kind), "point": point,
                    "reason": p.reason})
    return out


# ---- fan-out ---------------------------------------------------------------------------------------------
def chunks(
    run_ids: Sequence[uuid.UUID], requests: Sequence[SimulationRequest], size: int, spread: int = 1,
    max_bytes: int | None = None,
) -> list[tuple[str, list[uuid.UUID]]]:
    """The runs grouped by ``batch_key``, each group of n runs dealt into max(ceil(n / size), min(n, spread))
    chunks: one worker task each, with the backend its queue is chosen by. ``spread`` (the worker processes)
    gives every process a chunk. Dealt, not cut: chunk j of m holds points j, j + m, j + 2m, ... (grid order
    kept), so chunks sample the whole grid and take about as long as each other. ``max_bytes`` (the limit of
    a run's estimated peak memory) caps ``size`` for a group at max_bytes // the largest point's estimate, so a
    stacked batch stays within what one run may use (``run_bytes`` of a batch is at most the sum of its points')."""
    groups: dict[tuple[Any, ...], list[uuid.UUID]] = {}
    backends: dict[tuple[Any, ...], str] = {}
    for run_id, request in zip(run_ids, requests, strict=True):
        key = batch_key(request)
        groups.setdefault(key, []).append(run_id)
        backends[key] = request.backend
    out = []
    largest: dict[tuple[Any, ...], int] = {}
    if max_bytes is not None:
        for request in requests:
            key = batch_key(request)
            largest[key] = max(largest.get(key, 0), run_bytes([request]))
    for key, ids in groups.items():
        fits = max(1, max_bytes // largest[key]) if max_bytes is not None else size
        m = max(-(-len(ids) // min(size, fits)), min(len(ids), spread))
        out += [(backends[key], ids[j::m]) for j in range(m)]
    return out


# ---- the table -------------------------------------------------------------------------------------------
_ARROW = {int: pa.int64(), float: pa.float64()}
#: the summary metrics (dynamics.SUMMARY_METRICS, as /v1/runs serves them) and their Parquet types
_SUMMARY_TYPES: dict[str, pa.DataType] = {q.name: _ARROW.get(q.type, pa.string()) for q in SUMMARY_METRICS}


def grid_order(axes: dict[str, list[Any]], runs: Sequence[Run]) -> list[Run]:
    """The runs in grid order (the last axis varies fastest), by their requests' values on the axes."""
    names = list(axes)
    position = {tuple(vals): i for i, vals in enumerate(itertools.product(*axes.values()))}
    return sorted(runs, key=lambda r: position.get(tuple(r.request.get(a) for a in names), len(position)))


def table(axes: dict[str, list[Any]], runs: Sequence[Run]) -> tuple[dict[str, list[Any]], dict[str, pa.DataType]]:
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

"""Sweeps as labelled N-D arrays (xarray): the summary table as a Dataset over the sweep's axes and the
dynamics, and the trajectories with a ``step`` dimension too. Needs the ``xarray`` extra (xarray and
h5netcdf, so that ``dataset.to_netcdf(path)`` works)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from lindyn.bridges import metric_columns, require

if TYPE_CHECKING:
    import pandas as pd

    from lindyn.client import Sweep

EXTRA = "xarray"


def sweep_dataset(sweep: Sweep) -> Any:
    """The sweep as an ``xarray.Dataset``: dimensions its axes (in its order) and ``dynamics``, coordinates
    the axis values; one data variable per summary metric over (*axes, dynamics), NaN (or "" for text)
    where a point has not finished; ``log_max_distance`` over the axes when GD and self-consistent both ran;
    ``run_id`` and ``status`` over the axes. Attributes: sweep_id, name, base_request and tags (JSON text,
    so that the dataset writes to NetCDF as it is). Two requests: the sweep and its table (Parquet)."""
    xr = require("xarray", EXTRA, "Sweep.dataset()")
    frame = sweep.table()
    axes = _mesh(sweep, frame)
    index = _grid_index(axes, frame)
    shape = tuple(len(v) for v in axes.values())
    dims = tuple(axes)
    dynamics = _dynamics(frame)
    metrics = list(dict.fromkeys(c.split(".", 1)[1] for c in frame.columns if "." in c))
    variables: dict[str, Any] = {}
    for metric in metrics:
        columns = [f"{name}.{metric}" for name in dynamics]
        stacked = np.stack([_values(frame[c]) for c in columns], axis=-1)  # (points, dynamics)
        variables[metric] = ((*dims, "dynamics"), _on_grid(stacked, index, (*shape, len(dynamics))))
    for column in ("log_max_distance", "run_id", "status"):
        if column in frame.columns:
            variables[column] = (dims, _on_grid(_values(frame[column]), index, shape))
    coords = {a: np.asarray(v) for a, v in axes.items()} | {"dynamics": dynamics}
    return xr.Dataset(variables, coords=coords, attrs=_attrs(sweep))


def trajectory_dataset(sweep: Sweep, frame: pd.DataFrame) -> Any:
    """The sweep's trajectories (``frame``: the long table of ``Sweep.trajectories()``) as an
    ``xarray.Dataset`` over (*axes, dynamics, step): one data variable per metric, NaN at the steps a run did
    not record (or where it has not finished). A metric whose name is also an axis (``rank``) is called
    ``<name>_metric`` here. One more request: the sweep's table (where each run sits on the grid)."""
    xr = require("xarray", EXTRA, "Sweep.trajectories(dataset=True)")
    table = sweep.table()
    axes = _mesh(sweep, table)
    position = dict(zip(table["run_id"], _grid_index(axes, table), strict=True))
    shape = tuple(len(v) for v in axes.values())
    dynamics = _dynamics(table)
    steps = np.unique(frame["step"].to_numpy(dtype=np.int64))
    points = np.asarray([position[r] for r in frame["run_id"]], dtype=np.int64)
    which = np.asarray([dynamics.index(d) for d in frame["dynamics"]], dtype=np.int64)
    at = np.searchsorted(steps, frame["step"].to_numpy(dtype=np.int64))
    variables: dict[str, Any] = {}
    for metric in metric_columns(frame):
        full = np.full((int(np.prod(shape)), len(dynamics), len(steps)), np.nan)
        full[points, which, at] = frame[metric].to_numpy(dtype=np.float64, na_value=np.nan)
        name = f"{metric}_metric" if metric in axes else metric
        variables[name] = ((*axes, "dynamics", "step"), full.reshape(*shape, len(dynamics), len(steps)))
    coords = {a: np.asarray(v) for a, v in axes.items()} | {"dynamics": dynamics, "step": steps}
    return xr.Dataset(variables, coords=coords, attrs=_attrs(sweep))


def _attrs(sweep: Sweep) -> dict[str, Any]:
    data = sweep.data
    return {
        "sweep_id": sweep.id,
        "name": data.get("name") or "",
        "base_request": json.dumps(data.get("base") or {}, sort_keys=True),
        "tags": json.dumps(data.get("tags") or {}, sort_keys=True),
    }


def _dynamics(table: pd.DataFrame) -> list[str]:
    """The dynamics the sweep ran: the prefixes of its table's ``<dynamics>.<metric>`` columns."""
    return list(dict.fromkeys(c.split(".", 1)[0] for c in table.columns if "." in c))


def _mesh(sweep: Sweep, frame: pd.DataFrame) -> dict[str, list[Any]]:
    """The sweep's axes; for a refined sweep (points off the grid) each axis's values in the table, sorted: the
    points lie on that mesh, NaN (or "") at its nodes that are not points."""
    axes: dict[str, list[Any]] = dict(sweep.data["axes"])
    if sweep.data.get("refine"):
        axes = {a: sorted(set(v) | set(frame[a].tolist())) for a, v in axes.items()}
    return axes


def _grid_index(axes: dict[str, list[Any]], frame: pd.DataFrame) -> np.ndarray:
    """Each table row's flat position on the grid (C order: the last axis varies fastest)."""
    shape = tuple(len(v) for v in axes.values())
    per_axis = []
    for a, values in axes.items():
        lookup = {v: i for i, v in enumerate(values)}
        per_axis.append(np.asarray([lookup[v] for v in frame[a].tolist()], dtype=np.int64))
    return np.ravel_multi_index(tuple(per_axis), shape) if per_axis else np.zeros(len(frame), dtype=np.int64)


def _values(column: pd.Series) -> np.ndarray:
    """A table column as floats (NaN for null) when numeric, else text ("" for null)."""
    import pandas as pd
    if column.dtype.kind in "biuf" or str(column.dtype) in ("Int64", "Float64"):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(["" if pd.isna(v) else str(v) for v in column.tolist()], dtype=object)


def _on_grid(values: np.ndarray, index: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``values`` (one per table row, maybe with trailing dimensions) laid on the grid of ``shape``."""
    fill: Any = np.nan if values.dtype.kind == "f" else ""
    size = int(np.prod(shape[: len(shape) - (values.ndim - 1)]))
    out = np.full((size, *values.shape[1:]), fill, dtype=values.dtype)
    out[index] = values
    return out.reshape(shape)

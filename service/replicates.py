"""A sweep's table sliced at axis values (``at=d:200``) and aggregated over replicate axes (``aggregate=seed``):
one row per remaining grid point with, for every numeric metric, its mean, sample standard deviation and
count (``<dynamics>.<metric>.mean``, ``.sd``, ``.n``).

Counting: ``n`` is the number of the point's runs with a finite value of the metric, i.e. finished runs
(succeeded or diverged: a diverged run's finite values, such as its minimal test error before it diverged,
count; its non-finite ones are null and do not). Failed, cancelled and unfinished runs have no values.
``mean`` is null when n = 0, ``sd`` (ddof = 1) when n < 2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from dynamics.result import METRICS

#: relative tolerance of an ``at`` value against the axis's values (a value typed in decimal matches the
#: float the axis holds)
AT_REL_TOL = 1e-9
#: the statistics of an aggregated metric column, as suffixes of its name, and their Parquet types
STATISTICS: dict[str, pa.DataType] = {"mean": pa.float64(), "sd": pa.float64(), "n": pa.int64()}
#: the counts of an aggregated row: its grid points, those finished (succeeded or diverged), those diverged
COUNTS: tuple[str, ...] = ("runs", "finished", "diverged")
_FINISHED = ("succeeded", "diverged")


class ViewError(ValueError):
    """A slice or an aggregation that does not fit the sweep: ``field`` (at or aggregate) names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class View:
    """What to show of a sweep's table: the slices (axis -> its value there), the axes averaged over, and the
    axes that remain (neither sliced nor averaged over), each in the sweep's axis order."""

    at: dict[str, Any]
    aggregate: list[str]
    remaining: list[str]


def names(values: Iterable[str] | None) -> list[str]:
    """Query values that may be repeated or comma-separated (``aggregate=seed,task_seed``), in order."""
    return [part.strip() for v in values or () for part in v.split(",") if part.strip()]


def view(axes: dict[str, list[Any]], at: Sequence[str] = (), aggregate: Sequence[str] | None = None,
         replicates: Sequence[str] = ()) -> View:
    """The view of a sweep with these ``axes`` for ``at`` ("axis:value" each) and ``aggregate`` (axis names;
    None: the ``replicates`` that are not sliced). ViewError naming ``at`` for a malformed slice, an unknown
    axis or a value not on it, or an axis sliced twice; naming ``aggregate`` for an unknown axis or one that
    is also sliced."""
    sliced: dict[str, Any] = {}
    for item in at:
        axis, sep, text = item.partition(":")
        axis = axis.strip()
        if not sep or not axis or not text.strip():
            raise ViewError("at", f"{item!r}: expected axis:value (e.g. d:200)")
        if axis not in axes:
            raise ViewError("at", f"{axis!r} is not an axis of this sweep (its axes: {', '.join(axes)})")
        if axis in sliced:
            raise ViewError("at", f"axis {axis} is sliced twice")
        try:
            wanted = float(text)
        except ValueError:
            raise ViewError("at", f"{item!r}: {text.strip()!r} is not a number") from None
        found = [v for v in axes[axis] if v == wanted or math.isclose(v, wanted, rel_tol=AT_REL_TOL)]
        if not found:
            raise ViewError("at", f"{text.strip()} is not a value of axis {axis} (its values: "
                                  f"{', '.join(str(v) for v in axes[axis])})")
        sliced[axis] = found[0]
    if aggregate is None:
        over = [a for a in replicates if a in axes and a not in sliced]
    else:
        unknown = [a for a in aggregate if a not in axes]
        if unknown:
            raise ViewError("aggregate", f"{', '.join(map(repr, unknown))} is not an axis of this sweep (its axes: "
                                         f"{', '.join(axes)})")
        both = [a for a in aggregate if a in sliced]
        if both:
            raise ViewError("aggregate", f"axis {', '.join(both)} is both sliced (at) and averaged over (aggregate)")
        over = [a for a in axes if a in aggregate]
    remaining = [a for a in axes if a not in sliced and a not in over]
    return View(at=sliced, aggregate=over, remaining=remaining)


def metric_names(columns: Iterable[str], axes: Iterable[str]) -> list[str]:
    """The numeric metric columns of a sweep table (``<dynamics>.<metric>``, ``log_max_distance``), by the
    catalogue (dynamics.result.METRICS)."""
    skip = set(axes)
    out = []
    for c in columns:
        q = METRICS.get(c.rsplit(".", 1)[-1])
        if c not in skip and q is not None and q.numeric:
            out.append(c)
    return out


def sliced(columns: dict[str, list[Any]], at: dict[str, Any]) -> dict[str, list[Any]]:
    """The rows of a table at the slices ``at`` (axis -> value, as the axis holds it), in their order."""
    if not at:
        return columns
    n = len(next(iter(columns.values()), []))
    keep = [i for i in range(n) if all(columns[a][i] == v for a, v in at.items())]
    return {c: [values[i] for i in keep] for c, values in columns.items()}


def aggregated(columns: dict[str, list[Any]], types: dict[str, pa.DataType], axes: Sequence[str],
               over: Sequence[str]) -> tuple[dict[str, list[Any]], dict[str, pa.DataType]]:
    """One row per value of the axes not in ``over`` (in the order the rows first have them: grid order),
    with the counts (COUNTS) and each numeric metric's mean, sample sd (ddof = 1) and n (STATISTICS) over
    the rows of that point; the module's docstring says what counts. Returns the columns and their types."""
    keys = [a for a in axes if a not in over]
    metrics = metric_names(columns, axes)
    rows = len(columns["status"]) if "status" in columns else len(next(iter(columns.values()), []))
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i in range(rows):
        groups.setdefault(tuple(columns[a][i] for a in keys), []).append(i)
    out_types: dict[str, pa.DataType] = {a: types[a] for a in keys}
    out_types.update(dict.fromkeys(COUNTS, pa.int64()))
    for m in metrics:
        out_types.update({f"{m}.{s}": t for s, t in STATISTICS.items()})
    group = np.empty(rows, dtype=np.int64)
    for g, members in enumerate(groups.values()):
        group[members] = g
    size = len(groups)
    out: dict[str, list[Any]] = {a: [key[j] for key in groups] for j, a in enumerate(keys)}
    status = np.asarray(columns.get("status", [None] * rows), dtype=object)
    out["runs"] = np.bincount(group, minlength=size).tolist()
    out["finished"] = np.bincount(group, weights=np.isin(status, _FINISHED), minlength=size).astype(np.int64).tolist()
    out["diverged"] = np.bincount(group, weights=status == "diverged", minlength=size).astype(np.int64).tolist()
    for m in metrics:
        mean, sd, n = grouped_statistics(columns[m], group, size)
        out.update({f"{m}.mean": mean, f"{m}.sd": sd, f"{m}.n": n})
    return out, out_types


def grouped_statistics(values: Sequence[Any], group: np.ndarray, size: int) -> tuple[list[Any], list[Any], list[int]]:
    """Per group (``group[i]`` is row i's, 0 <= g < size): the mean, sample sd (ddof = 1, two passes: the
    squared deviations from the group's mean) and n of the finite values (None and non-finite left out);
    None where n = 0 (mean) or n < 2 (sd)."""
    x = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
    finite = np.isfinite(x)
    x = np.where(finite, x, 0.0)
    n = np.bincount(group, weights=finite, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(group, weights=x, minlength=size) / n
        deviation = np.where(finite, x - mean[group], 0.0)
        sd = np.sqrt(np.bincount(group, weights=deviation * deviation, minlength=size) / (n - 1))
    return ([float(v) if k > 0 else None for v, k in zip(mean, n, strict=True)],
            [float(v) if k > 1 else None for v, k in zip(sd, n, strict=True)],
            n.astype(np.int64).tolist())


def table_view(columns: dict[str, list[Any]], types: dict[str, pa.DataType], axes: Sequence[str],
               v: View) -> tuple[dict[str, list[Any]], dict[str, pa.DataType]]:
    """A sweep table (service.grid.table) at ``v``'s slices, aggregated over its ``aggregate`` axes if any."""
    rows = sliced(columns, v.at)
    if not v.aggregate:
        return rows, types
    return aggregated(rows, types, axes, v.aggregate)

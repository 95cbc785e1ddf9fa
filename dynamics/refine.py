"""Adaptive refinement of a sweep's mesh (method.md section 8): which points to add where a metric changes most.

Pure functions over points (tuples of axis values) and their metric values: no array module, no I/O.

The mesh is a tree of cells. The coarse grid's cells are the boxes between consecutive values of each axis;
a cell is *split* when its centre is a point, into the 2^n boxes between its corners and the midpoints of its
edges (n = 1: an interval is bisected; n = 2: a rectangle becomes four, adding the four edge midpoints and
the centre). So the current cells (the leaves) are read back from the points alone. A leaf's *spread* is
max - min of the metric over its corners that have a finite value; one round splits the leaves of largest
spread (> 0) first, adding the points of each split that are not there yet, as long as they fit the round's
budget (the first split that does not fit ends the round).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

Point = tuple[float, ...]
Cell = tuple[Point, Point]  # (lower corner, upper corner)


def midpoint(lo: float, hi: float, integer: bool) -> float | None:
    """The middle of [lo, hi]; on an integer axis rounded down; None when it is not strictly inside."""
    mid: float = (int(lo) + int(hi)) // 2 if integer else lo + (hi - lo) / 2
    return mid if lo < mid < hi else None


def _centre(cell: Cell, integer: Sequence[bool]) -> Point | None:
    mids = [midpoint(a, b, i) for a, b, i in zip(cell[0], cell[1], integer, strict=True)]
    return None if any(m is None for m in mids) else tuple(m for m in mids if m is not None)


def _children(cell: Cell, centre: Point) -> list[Cell]:
    ranges = [((lo, mid), (mid, hi)) for lo, mid, hi in zip(cell[0], centre, cell[1], strict=True)]
    return [(tuple(r[0] for r in box), tuple(r[1] for r in box)) for box in itertools.product(*ranges)]


def split_points(cell: Cell, integer: Sequence[bool]) -> list[Point]:
    """The points a split of ``cell`` needs (corners excluded): edge midpoints and centre; [] if it cannot split."""
    centre = _centre(cell, integer)
    if centre is None:
        return []
    choices = [(lo, mid, hi) for lo, mid, hi in zip(cell[0], centre, cell[1], strict=True)]
    corners = set(corners_of(cell))
    return [p for p in itertools.product(*choices) if p not in corners]


def corners_of(cell: Cell) -> list[Point]:
    return list(itertools.product(*zip(cell[0], cell[1], strict=True)))


def leaves(coarse: Sequence[Sequence[float]], points: set[Point], integer: Sequence[bool]) -> list[Cell]:
    """The current cells: the coarse grid's cells, each split (recursively) where its centre is a point."""
    axes = [sorted(v) for v in coarse]
    todo: list[Cell] = [
        (tuple(lo), tuple(hi))
        for lo, hi in (
            zip(*box, strict=True)
            for box in itertools.product(*([(a[i], a[i + 1]) for i in range(len(a) - 1)] for a in axes))
        )
    ]
    out: list[Cell] = []
    while todo:
        cell = todo.pop()
        centre = _centre(cell, integer)
        if centre is not None and centre in points:
            todo.extend(_children(cell, centre))
        else:
            out.append(cell)
    return sorted(out)


def spread(cell: Cell, values: Mapping[Point, float | None]) -> float:
    """max - min of the finite metric values at the cell's corners (0 with fewer than two)."""
    vs = [v for c in corners_of(cell) if (v := values.get(c)) is not None and math.isfinite(v)]
    return max(vs) - min(vs) if len(vs) >= 2 else 0.0


def refine(
    coarse: Sequence[Sequence[float]],
    values: Mapping[Point, float | None],
    budget: int,
    integer: Sequence[bool] | None = None,
) -> list[Point]:
    """The points one round adds (at most ``budget``, none already in ``values``): the leaves of the mesh
    over ``values``' points, by decreasing spread (ties: lower corner first), each split while its new points
    fit. ``coarse``: each axis's coarse values; ``values``: every point so far and its metric (None: none yet);
    ``integer``: per axis, whether its values are integers (midpoints rounded down)."""
    integer = list(integer) if integer is not None else [False] * len(coarse)
    points = set(values)
    scored = [(spread(c, values), c) for c in leaves(coarse, points, integer)]
    scored.sort(key=lambda sc: (-sc[0], sc[1]))
    added: list[Point] = []
    taken = set(points)
    for score, cell in scored:
        if score <= 0:
            break
        split = split_points(cell, integer)
        if not split:
            continue  # too narrow to split: a leaf for good
        new = [p for p in split if p not in taken]
        if len(added) + len(new) > budget:
            break
        added += new
        taken.update(new)
    return added


def round_budget(budget: int, used: int, rounds_left: int) -> int:
    """The points round k may add: what is left of the budget shared evenly by the rounds left (rounded up)."""
    left = max(budget - used, 0)
    return -(-left // rounds_left) if rounds_left > 0 else 0

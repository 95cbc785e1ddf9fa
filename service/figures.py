"""Figures of stored results: read what the database holds and hand plain arrays to ``service.plots``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from models import Run, Sweep
from models.results import stored_spectra, trajectory_columns
from service.grid import table
from service.plots import ImageFormat, line_plot, metric_column, metric_columns, phase_diagram, run_figure
from service.replicates import ViewError, sliced, table_view, view


class FigureError(ValueError):
    """A figure that cannot be drawn from this input: ``field`` names the parameter at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def run_figure_of(session: Session, run: Run, fmt: ImageFormat) -> bytes:
    """Figure 1 of a finished run from its stored trajectory and spectra."""
    trajectory: dict[str, Any] = trajectory_columns(session, run)
    return run_figure(
        pd.DataFrame(trajectory),
        stored_spectra(session, run),
        rank=run.rank,
        threshold=run.threshold,
        d=run.d,
        gamma_sigma2=run.gamma_sigma2,
        gamma_w=run.gamma_w,
        fmt=fmt,
    )


def sweep_phase_diagram(sweep: Sweep, runs: Sequence[Run], metric: str, fmt: ImageFormat, *,
                        dynamics: str = "gd", at: Sequence[str] = (), aggregate: Sequence[str] | None = None,
                        sd: bool = False) -> bytes:
    """The heat map of ``metric`` (or ``figure2``) over the sweep's two remaining axes, from its table (the
    rows of ``GET /v1/sweeps/{id}/table``); grid points without a result are missing. The remaining axes are
    those neither sliced (``at``, "axis:value") nor averaged over (``aggregate``; by default the sweep's
    replicates): averaged, each panel shows the mean, and with ``sd`` the sd beside it. gamma_sigma2 is x and
    gamma_w is y when those remain (with the theory's lines), else the axes in the sweep's order. One
    remaining axis: a line plot (mean with sd error bars when averaged).
    FigureError for an unknown metric, a bad slice or aggregate, more than two remaining axes or none."""
    axes = list(sweep.axes)
    columns, types = table(sweep.axes, runs)
    frame = pd.DataFrame(columns)
    if metric != "figure2":
        try:
            metric_column(frame, metric, dynamics)
        except KeyError:
            choices = ", ".join(["figure2", *metric_columns(frame)])
            raise FigureError("metric", f"sweep {sweep.id} has no metric {metric!r} (for {dynamics}); "
                                        f"choose one of: {choices}") from None
    try:
        v = view(sweep.axes, at, aggregate, replicates=sweep.replicates or ())
    except ViewError as exc:
        raise FigureError(exc.field, str(exc)) from exc
    if len(v.remaining) > 2:
        raise FigureError("at", f"sweep {sweep.id} has {len(v.remaining)} axes to draw ({', '.join(v.remaining)}): "
                                "a phase diagram has two; slice the others with at=axis:value (e.g. at="
                                f"{v.remaining[-1]}:{sweep.axes[v.remaining[-1]][0]})")
    if not v.remaining:
        raise FigureError("aggregate" if v.aggregate else "at",
                          f"no axis of sweep {sweep.id} is left to draw over (axes: {', '.join(axes)}; sliced: "
                          f"{', '.join(v.at) or 'none'}; averaged over: {', '.join(v.aggregate) or 'none'})")
    rows = sliced(columns, v.at)
    ids = set(rows["run_id"])
    shown = [r for r in runs if str(r.id) in ids]
    finished = sum(s in ("succeeded", "diverged") for s in rows["status"])
    title = f"sweep {sweep.name or sweep.id}: {finished} of {len(rows['run_id'])} grid points finished"
    ds, ranks = {r.d for r in shown}, {r.rank for r in shown}
    if len(ds) == 1 and len(ranks) == 1:
        title += f" (d = {next(iter(ds))}, k = {next(iter(ranks))})"
    if v.at:
        title += "\nat " + ", ".join(f"{a} = {x}" for a, x in v.at.items())
    if v.aggregate:
        points = math.prod(len(sweep.axes[a]) for a in v.aggregate)
        title += ("; " if v.at else "\n") + f"averaged over {', '.join(v.aggregate)} ({points} per point)"
    if sweep.refine is not None:  # a non-uniform mesh: each cell in its nearest point's value
        title += f"\nrefined on {sweep.refine['metric']}: each cell drawn in its nearest point's value"
    frame = pd.DataFrame(table_view(columns, types, axes, v)[0])
    if len(v.remaining) == 1:
        return line_plot(frame, metric, fmt, x=v.remaining[0], dynamics=dynamics, title=title,
                         aggregated=bool(v.aggregate))
    remaining = v.remaining
    x, y = ("gamma_sigma2", "gamma_w") if set(remaining) == {"gamma_sigma2", "gamma_w"} else (remaining[0], remaining[1])
    statistics = (("mean", "sd") if sd else ("mean",)) if v.aggregate else ("",)
    return phase_diagram(frame, metric, fmt, x=x, y=y, dynamics=dynamics,
                         d=next(iter(ds)) if len(ds) == 1 else None,
                         rank=next(iter(ranks)) if len(ranks) == 1 else None, title=title, statistics=statistics,
                         nearest=sweep.refine is not None)

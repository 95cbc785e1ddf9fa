"""Figures of stored results: read what the database holds and hand plain arrays to ``service.plots``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from models import Run, Sweep
from models.results import stored_spectra, trajectory_columns
from service.grid import table
from service.plots import ImageFormat, metric_column, metric_columns, phase_diagram, run_figure


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
                        dynamics: str = "gd") -> bytes:
    """The heat map of ``metric`` (or ``figure2``) over the sweep's two axes, from its table (the rows of
    ``GET /v1/sweeps/{id}/table``); grid points without a result are missing. gamma_sigma2 is x and gamma_w is
    y when those are the axes (with the theory's lines), else the axes in the sweep's order.
    FigureError for a sweep without exactly two axes or an unknown metric."""
    axes = list(sweep.axes)
    if len(axes) != 2:
        raise FigureError("sweep_id", f"a phase diagram needs a sweep with two axes; sweep {sweep.id} has "
                                      f"{len(axes)} ({', '.join(axes)})")
    columns, _ = table(sweep.axes, runs)
    frame = pd.DataFrame(columns)
    if metric != "figure2":
        try:
            metric_column(frame, metric, dynamics)
        except KeyError:
            choices = ", ".join(["figure2", *metric_columns(frame)])
            raise FigureError("metric", f"sweep {sweep.id} has no metric {metric!r} (for {dynamics}); "
                                        f"choose one of: {choices}") from None
    x, y = ("gamma_sigma2", "gamma_w") if set(axes) == {"gamma_sigma2", "gamma_w"} else (axes[0], axes[1])
    ds, ranks = {r.d for r in runs}, {r.rank for r in runs}
    finished = int(frame["status"].isin(["succeeded", "diverged"]).sum()) if len(frame) else 0
    title = f"sweep {sweep.name or sweep.id}: {finished} of {len(frame)} grid points finished"
    if len(ds) == 1 and len(ranks) == 1:
        title += f" (d = {next(iter(ds))}, k = {next(iter(ranks))})"
    if sweep.refine is not None:  # a non-uniform mesh: each cell in its nearest point's value
        title += f"\nrefined on {sweep.refine['metric']}: each cell drawn in its nearest point's value"
    return phase_diagram(frame, metric, fmt, x=x, y=y, dynamics=dynamics,
                         d=next(iter(ds)) if len(ds) == 1 else None,
                         rank=next(iter(ranks)) if len(ranks) == 1 else None, title=title,
                         nearest=sweep.refine is not None)

"""Figures of stored results: read what the database holds and hand plain arrays to ``service.plots``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Run
from models.crud import decode_spectrum, trajectory_columns
from models.tables import TrajectoryPoint
from service.plots import ImageFormat, run_figure


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

"""What a simulation returns: per-dynamics trajectories and summaries, the GD/self-consistent comparison.

Everything here is on the host (NumPy arrays, Python floats), whatever backend ran the dynamics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Scalar metric columns of a trajectory, in order (the columns of ``lindyn simulate --out``).
METRIC_COLUMNS: tuple[str, ...] = (
    "train_error",
    "test_error",
    "stable_rank",
    "rank",
    "gap_ratio",
    "n_above_threshold",
)
TRAJECTORY_COLUMNS: tuple[str, ...] = ("dynamics", "step", *METRIC_COLUMNS)

STOP_REASONS: tuple[str, ...] = ("max_steps", "train_converged", "test_rising", "plateau", "diverged")

SUMMARY_FIELDS: tuple[str, ...] = (
    "min_test_error",
    "min_test_error_step",
    "stable_rank_at_min",
    "rank_at_min",
    "final_train_error",
    "final_test_error",
    "steps_run",
    "stop_reason",
)


@dataclass
class Trajectory:
    """Recorded steps of one dynamics: ``step`` and one float array per metric column (same length).

    ``spectrum_steps[j]`` is the step of ``spectrum[j]``, the singular values s_1 >= s_2 >= ... >= s_d.
    """

    step: np.ndarray
    metrics: dict[str, np.ndarray]
    spectrum_steps: np.ndarray
    spectrum: np.ndarray  # (n_spectra, d)

    def __len__(self) -> int:
        return int(self.step.shape[0])

    def columns(self) -> dict[str, np.ndarray]:
        return {"step": self.step, **{k: self.metrics[k] for k in METRIC_COLUMNS}}


@dataclass
class Summary:
    """Per-dynamics summary (method.md section 5)."""

    min_test_error: float
    min_test_error_step: int
    stable_rank_at_min: float
    rank_at_min: int
    final_train_error: float
    final_test_error: float
    steps_run: int
    stop_reason: str
    diverged_step: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: _json_float(v) for k, v in self.__dict__.items()}


@dataclass
class Comparison:
    """GD vs self-consistent: distance (1/d^2) ||A_GD - A_SC||_F^2 at each step both run, and its maximum."""

    step: np.ndarray
    distance: np.ndarray
    max_distance: float
    log_max_distance: float

    def as_dict(self) -> dict[str, Any]:
        return {"max_distance": _json_float(self.max_distance), "log_max_distance": _json_float(self.log_max_distance)}


@dataclass
class SimulationResult:
    """The outcome of one request. ``request`` is the normalised request (every field filled in)."""

    request: dict[str, Any]
    lr: float
    threshold: float
    regime: dict[str, Any]
    trajectories: dict[str, Trajectory]
    summaries: dict[str, Summary]
    comparison: Comparison | None
    backend: str
    device: str
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return any(s.stop_reason == "diverged" for s in self.summaries.values())

    def summary_dict(self) -> dict[str, Any]:
        """The JSON summary (``lindyn simulate --json``): request, summaries, comparison, regime."""
        return {
            "request": self.request,
            "lr": self.lr,
            "threshold": self.threshold,
            "summaries": {name: s.as_dict() for name, s in self.summaries.items()},
            "comparison": self.comparison.as_dict() if self.comparison is not None else None,
            "regime": self.regime,
            "backend": self.backend,
            "device": self.device,
        }

    def trajectory_columns(self, dynamics: list[str] | None = None) -> dict[str, list[Any]]:
        """Long format: one row per (dynamics, recorded step), columns TRAJECTORY_COLUMNS."""
        out: dict[str, list[Any]] = {c: [] for c in TRAJECTORY_COLUMNS}
        for name, traj in self.trajectories.items():
            if dynamics is not None and name not in dynamics:
                continue
            n = len(traj)
            out["dynamics"].extend([name] * n)
            out["step"].extend(int(s) for s in traj.step)
            for col in METRIC_COLUMNS:
                out[col].extend(_json_float(float(x)) for x in traj.metrics[col])
        return out


def _json_float(v: Any) -> Any:
    """NaN/inf are not JSON: they become None."""
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    return v

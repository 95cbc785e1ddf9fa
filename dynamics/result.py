"""What a simulation returns: per-dynamics trajectories and summaries, the GD/self-consistent comparison;
and the catalogue of what it measures.

The catalogue: ``TRAJECTORY_METRICS`` (the scalar columns recorded along a run), ``SUMMARY_METRICS`` (the
fields of :class:`Summary`) and ``COMPARISON_METRICS`` (those of :class:`Comparison`), each a
:class:`Quantity` (name, type, title for plots and tables, unit, whether lower is better). Everything else
(the response schema, the filters, the plot titles, the CLI's and the sweep table's columns) is derived
from them: a metric is named here (and computed in simulate.py) and nowhere else.

Everything here is on the host (NumPy arrays, Python floats), whatever backend ran the dynamics.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Quantity:
    """One measured quantity: a trajectory column or a summary metric.

    ``type`` is int, float or str; ``optional``: a finished run may have no value (None); ``lower_is_better``:
    True or False for a figure of merit, None for a description (a rank, a step)."""

    name: str
    type: type
    title: str
    unit: str = ""
    lower_is_better: bool | None = None
    optional: bool = False

    @property
    def numeric(self) -> bool:
        return self.type in (int, float)

    @property
    def label(self) -> str:
        """The title with its unit, for an axis or a colour bar."""
        return f"{self.title} [{self.unit}]" if self.unit else self.title


def _quantity(title: str, unit: str = "", lower_is_better: bool | None = None, **kw: Any) -> Any:
    """A dataclass field that is a catalogued quantity (its name and type are the field's)."""
    return field(metadata={"title": title, "unit": unit, "lower_is_better": lower_is_better}, **kw)


def quantities(cls: type) -> tuple[Quantity, ...]:
    """The catalogued fields of a dataclass (those made with ``_quantity``), in order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        if "title" not in f.metadata:
            continue
        hint = hints[f.name]
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        base = next(a for a in args if a is not type(None))
        out.append(Quantity(f.name, base, optional=type(None) in args, **f.metadata))
    return tuple(out)


#: the scalar columns of a trajectory, in order (the columns of ``lindyn simulate --out``; method.md section 5)
TRAJECTORY_METRICS: tuple[Quantity, ...] = (
    Quantity("train_error", float, "train error", "(1/d²)‖A − Y‖²_F", lower_is_better=True),
    Quantity("test_error", float, "test error", "(1/d²)‖A − A*‖²_F", lower_is_better=True),
    Quantity("stable_rank", float, "stable rank", "‖A‖²_F / ‖A‖²_op"),
    Quantity("rank", float, "rank", "#{s_i > s_1 / 5}"),
    Quantity("gap_ratio", float, "gap ratio", "s_k / s_(k+1)"),
    Quantity("n_above_threshold", float, "singular values above the threshold", "#{s_i > σ²w}"),
)
METRIC_COLUMNS: tuple[str, ...] = tuple(q.name for q in TRAJECTORY_METRICS)
TRAJECTORY_COLUMNS: tuple[str, ...] = ("dynamics", "step", *METRIC_COLUMNS)

#: why a dynamics stopped (a Summary's ``stop_reason``; dynamics/stopping.py)
STOP_REASONS: tuple[str, ...] = ("max_steps", "train_converged", "test_rising", "plateau", "diverged")


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


@dataclass
class Summary:
    """Per-dynamics summary (method.md section 5); every field is a catalogued quantity (SUMMARY_METRICS)."""

    min_test_error: float = _quantity("minimal test error", lower_is_better=True)
    min_test_error_step: int = _quantity("iterations until the minimal test error", "iterations")
    stable_rank_at_min: float = _quantity("stable rank at the minimal test error")
    rank_at_min: int = _quantity("rank at the minimal test error")
    final_train_error: float = _quantity("final train error", lower_is_better=True)
    final_test_error: float = _quantity("final test error", lower_is_better=True)
    steps_run: int = _quantity("iterations run", "iterations")
    stop_reason: str = _quantity("stop reason")  # one of STOP_REASONS
    diverged_step: int | None = _quantity("iteration at which it diverged", "iterations", default=None)

    def as_dict(self) -> dict[str, Any]:
        return {k: _json_float(v) for k, v in self.__dict__.items()}


@dataclass
class Comparison:
    """GD vs self-consistent: distance (1/d^2) ||A_GD - A_SC||_F^2 at each step both run, and its maximum."""

    step: np.ndarray
    distance: np.ndarray
    max_distance: float = _quantity("max distance GD vs self-consistent", lower_is_better=True)
    log_max_distance: float = _quantity("log max distance GD vs self-consistent (natural log)", lower_is_better=True)

    def as_dict(self) -> dict[str, Any]:
        return {q.name: _json_float(getattr(self, q.name)) for q in COMPARISON_METRICS}


#: the summary metrics of one dynamics (the fields of Summary)
SUMMARY_METRICS: tuple[Quantity, ...] = quantities(Summary)
#: the metrics of the GD vs self-consistent comparison (the scalar fields of Comparison)
COMPARISON_METRICS: tuple[Quantity, ...] = quantities(Comparison)
#: the summary metrics every finished dynamics has: the columns of the CLI's summary tables
SUMMARY_COLUMNS: tuple[str, ...] = tuple(q.name for q in SUMMARY_METRICS if not q.optional)
#: the numeric summary metrics every finished dynamics has: runs are filtered and sorted on them
RANGE_METRICS: tuple[Quantity, ...] = tuple(q for q in SUMMARY_METRICS if q.numeric and not q.optional)
#: the paper's Figure 2 panels, in its order: three summary metrics of one dynamics and the comparison's
FIGURE2_METRICS: tuple[str, ...] = ("min_test_error", "stable_rank_at_min", "min_test_error_step", "log_max_distance")
#: the metric a phase diagram shows unless told otherwise (Figure 2's first panel)
DEFAULT_METRIC = FIGURE2_METRICS[0]
#: every catalogued metric (summaries and comparison) by name
METRICS: dict[str, Quantity] = {q.name: q for q in (*SUMMARY_METRICS, *COMPARISON_METRICS)}
assert set(FIGURE2_METRICS) <= set(METRICS)


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

    @property
    def steps_done(self) -> int | None:
        """The most steps any dynamics ran (None without summaries)."""
        return max((s.steps_run for s in self.summaries.values()), default=None)

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

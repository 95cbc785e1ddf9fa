"""lindyn's numerical core: the four dynamics of two-layer linear networks A = W2 W1.

Pure functions over an array module ``xp`` (NumPy or CuPy): no database, no Celery, no HTTP.
Entry points: :func:`simulate` (one request) and :func:`simulate_batch` (many grid points as stacked arrays).
"""

from dynamics.request import DYNAMICS, Limits, SimulationRequest, regime
from dynamics.result import (
    COMPARISON_METRICS,
    METRIC_COLUMNS,
    STOP_REASONS,
    SUMMARY_METRICS,
    TRAJECTORY_COLUMNS,
    TRAJECTORY_METRICS,
    Comparison,
    Quantity,
    SimulationResult,
    Summary,
    Trajectory,
)
from dynamics.simulate import ProgressCallback, RowsCallback, simulate, simulate_batch

__all__ = [
    "COMPARISON_METRICS",
    "DYNAMICS",
    "METRIC_COLUMNS",
    "STOP_REASONS",
    "SUMMARY_METRICS",
    "TRAJECTORY_COLUMNS",
    "TRAJECTORY_METRICS",
    "Comparison",
    "Limits",
    "ProgressCallback",
    "Quantity",
    "RowsCallback",
    "SimulationRequest",
    "SimulationResult",
    "Summary",
    "Trajectory",
    "regime",
    "simulate",
    "simulate_batch",
]

"""Run requests: simulate (one) and simulate_batch (grid points advanced together as stacked arrays)."""

from __future__ import annotations

from collections.abc import Callable

from dynamics.request import SimulationRequest
from dynamics.result import SimulationResult

#: progress(step_done, total_steps): called a bounded number of times (about every 1% of the steps).
ProgressCallback = Callable[[int, int], None]


def simulate(request: SimulationRequest, *, progress: ProgressCallback | None = None) -> SimulationResult:
    """Run one request; equal to ``simulate_batch([request])[0]``."""
    return simulate_batch([request], progress=progress)[0]


def simulate_batch(
    requests: list[SimulationRequest], *, progress: ProgressCallback | None = None
) -> list[SimulationResult]:
    """Run requests that share d, rank, noise_std, task_seed, dtype, backend and dynamics as one batch."""
    raise NotImplementedError("being written")

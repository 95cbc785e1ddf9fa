"""The MSE task (method.md section 1): A* = C D^T, Y = A* + E, drawn on the host from ``task_seed``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Task:
    """Host (NumPy float64) arrays of one task."""

    A_star: np.ndarray  # (d, d), rank k
    E: np.ndarray  # (d, d) noise
    Y: np.ndarray  # A* + E

    @property
    def d(self) -> int:
        return int(self.Y.shape[0])

    @property
    def A_star_op_norm(self) -> float:
        """||A*||_op, used by the learning-rate rule."""
        return float(np.linalg.norm(self.A_star, 2))


def draw_task(d: int, rank: int, noise_std: float, task_seed: int) -> Task:
    """C, D in R^{d x k} with entries N(0, 1/sqrt(k)) (std k^-1/4), then E with entries N(0, noise_std^2).

    Draw order (fixed, for reproducibility): C, D, E from ``np.random.default_rng(task_seed)``.
    """
    rng = np.random.default_rng(task_seed)
    scale = rank**-0.25
    C = rng.normal(0.0, scale, size=(d, rank))
    D = rng.normal(0.0, scale, size=(d, rank))
    E = rng.normal(0.0, 1.0, size=(d, d)) * noise_std
    A_star = C @ D.T
    return Task(A_star=A_star, E=E, Y=A_star + E)


def error(xp, diff, d: int, out=None):  # type: ignore[no-untyped-def]
    """(1/d^2) ||diff||_F^2 over the last two axes, accumulated in float64. ``out``: where the squares go (an
    array shaped like ``diff``, or ``diff`` itself), instead of a new array; the same numbers."""
    return xp.sum(xp.multiply(diff, diff, out=out), axis=(-2, -1), dtype=xp.float64) / (d * d)

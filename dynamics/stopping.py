"""Stopping rules (method.md section 5), checked on the host after each step i from the error histories."""

from __future__ import annotations

import math
from collections.abc import Sequence

TRAIN_CONVERGED = 1e-3  # stop when train error < 1e-3
PLATEAU_DELTA = 2e-4  # |train[i] - train[i-1]| < 2e-4 ...
PLATEAU_PROGRESS = 1e-2  # ... while train[0] - train[i] > 1e-2


def paper_stop_reason(train: Sequence[float], test: Sequence[float], i: int) -> str | None:
    """The paper's rules after step i (train[j], test[j] for j = 0..i): ``train_converged`` when
    train[i] < 1e-3; ``test_rising`` when i > 3 and test[i-2] < test[i-1] < test[i]; ``plateau`` when
    i > 3 and |train[i] - train[i-1]| < 2e-4 while train[0] - train[i] > 1e-2; else None."""
    if train[i] < TRAIN_CONVERGED:
        return "train_converged"
    if i > 3:
        if test[i - 2] < test[i - 1] < test[i]:
            return "test_rising"
        if abs(train[i] - train[i - 1]) < PLATEAU_DELTA and train[0] - train[i] > PLATEAU_PROGRESS:
            return "plateau"
    return None


def stop_reason(
    train: Sequence[float], test: Sequence[float], i: int, max_steps: int, rule: str, blowup: float = math.inf
) -> str | None:
    """Why a dynamics stops after step i, or None: ``diverged`` (non-finite error, or an error above
    ``blowup``, past which A^T A would overflow), the paper's rules when ``rule == "paper"`` (only once a
    step was taken), ``max_steps`` at i == max_steps."""
    if not (math.isfinite(train[i]) and math.isfinite(test[i])) or train[i] > blowup:
        return "diverged"
    if rule == "paper" and i >= 1:
        reason = paper_stop_reason(train, test, i)
        if reason is not None:
            return reason
    if i >= max_steps:
        return "max_steps"
    return None

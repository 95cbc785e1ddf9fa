"""Stopping rules (method.md section 5), checked on the host after each step i from the error histories."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from dynamics.result import STOP_REASONS

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


def stop_codes(
    train: np.ndarray,
    test: np.ndarray,
    i: int,
    max_steps: np.ndarray,
    paper: np.ndarray,
    blowup: float = math.inf,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`stop_reason` for many points at once: ``train``/``test`` are (N, >= i+1) histories of which
    ``rows`` (default all) are checked; ``max_steps`` and ``paper`` (bool) are given for those rows.
    Returns codes into ``CODES`` (0 = continue)."""
    if rows is None:
        rows = np.arange(train.shape[0])

    def col(h: np.ndarray, j: int) -> np.ndarray:
        return h[rows, j]

    tr, te = col(train, i), col(test, i)
    code = np.zeros(tr.shape[0], dtype=np.int8)
    with np.errstate(invalid="ignore"):
        diverged = ~(np.isfinite(tr) & np.isfinite(te)) | (tr > blowup)
        rules = paper & (i >= 1) & ~diverged
        converged = rules & (tr < TRAIN_CONVERGED)
        rising = plateau = np.zeros_like(converged)
        if i > 3:
            rising = rules & ~converged & (col(test, i - 2) < col(test, i - 1)) & (col(test, i - 1) < te)
            plateau = (
                rules
                & ~converged
                & ~rising
                & (np.abs(tr - col(train, i - 1)) < PLATEAU_DELTA)
                & (col(train, 0) - tr > PLATEAU_PROGRESS)
            )
    code[i >= max_steps] = CODES.index("max_steps")
    code[plateau] = CODES.index("plateau")
    code[rising] = CODES.index("test_rising")
    code[converged] = CODES.index("train_converged")
    code[diverged] = CODES.index("diverged")
    return code


#: the stop codes of ``stop_codes``: 0 = continue, then each of STOP_REASONS
CODES: tuple[str | None, ...] = (None, *STOP_REASONS)

"""Initialisation (method.md sections 2 and 4), drawn on the host with NumPy's Generator.

- dense: W1 (w x d), W2 (d x w), entries N(0, sigma^2).
- reduced: X = [W1, W2^T] = Q R (w x 2d); GD on M1 = R[:, :d] (2d x d) and M2^T = R[:, d:]^T (d x 2d) is GD
  on (W1, W2) exactly, with A = M2^T M1.
- wishart: R drawn directly by the Bartlett decomposition of X^T X ~ Wishart(w, sigma^2 I_2d):
  R upper triangular, R_ii = sigma sqrt(chi2(w - i)), R_ij = sigma N(0, 1) for i < j; O(d^2) numbers for any w.
"""

from __future__ import annotations

import numpy as np


def dense_weights(d: int, width: int, sigma2: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """W1 (w x d) then W2 (d x w), entries N(0, sigma^2), from ``default_rng(seed)`` in that order."""
    rng = np.random.default_rng(seed)
    sigma = float(np.sqrt(sigma2))
    W1 = rng.standard_normal((width, d)) * sigma
    W2 = rng.standard_normal((d, width)) * sigma
    return W1, W2


def reduce_weights(W1: np.ndarray, W2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """QR-reduce dense weights (w >= 2d): returns (M1, M2^T) of shapes (2d x d), (d x 2d), same A and dynamics."""
    d = W1.shape[1]
    X = np.concatenate([W1, W2.T], axis=1)  # w x 2d
    R: np.ndarray = np.linalg.qr(X, mode="r")  # type: ignore[assignment]  # mode="r" returns R alone
    return np.ascontiguousarray(R[:, :d]), np.ascontiguousarray(R[:, d:].T)


def bartlett_factor(d: int, width: int, sigma2: float, seed: int) -> np.ndarray:
    """Upper-triangular R (2d x 2d) with R^T R ~ Wishart(w, sigma^2 I_2d), w >= 2d.

    Draw order: the 2d chi-square variates (degrees of freedom w, w-1, ..., w-2d+1), then the
    off-diagonal normals row by row (``np.triu_indices(2d, 1)`` order).
    """
    n = 2 * d
    if width < n:
        raise ValueError(f"the Wishart reduction needs width >= 2d = {n}, got {width}")
    rng = np.random.default_rng(seed)
    R = np.zeros((n, n))
    R[np.diag_indices(n)] = np.sqrt(rng.chisquare(width - np.arange(n)))
    R[np.triu_indices(n, 1)] = rng.standard_normal(n * (n - 1) // 2)
    R *= np.sqrt(sigma2)
    return R


def wishart_weights(d: int, width: int, sigma2: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduced weights (M1, M2^T) from the Bartlett factor: the law of ``reduce_weights(dense_weights(...))``."""
    R = bartlett_factor(d, width, sigma2, seed)
    return np.ascontiguousarray(R[:, :d]), np.ascontiguousarray(R[:, d:].T)


def initial_weights(
    d: int, width: int, sigma2: float, seed: int, init: str
) -> tuple[np.ndarray, np.ndarray]:
    """The weights GD runs on: reduced (2d wide) whenever w >= 2d, dense (w wide) otherwise.

    ``init``: ``wishart`` (Bartlett), ``dense`` (dense draw, QR-reduced when w >= 2d), ``auto`` (wishart
    when w >= 2d, else dense).
    """
    if init == "wishart" or (init == "auto" and width >= 2 * d):
        return wishart_weights(d, width, sigma2, seed)
    W1, W2 = dense_weights(d, width, sigma2, seed)
    if width >= 2 * d:
        return reduce_weights(W1, W2)
    return W1, W2

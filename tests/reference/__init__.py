"""Reference implementations, as the paper's own code did it: full-width weights, two matrix square roots.

Used by the tests (exactness of the reduction and of the one-decomposition step) and by bench/ (the
speed-ups are quoted against these, imported from here: the baseline the benchmarks time is the oracle the
tests prove the fast paths equal to). Not shipped with dynamics/, which holds what production runs. Plain and
direct on purpose: no reduction, no reuse.
"""

from __future__ import annotations

from typing import Any

from dynamics.steps import mT


def dense_gd_step(xp: Any, W1: Any, W2: Any, Y: Any, eta: float, order: str) -> tuple[Any, Any]:
    """GD on the full W1 (w x d), W2 (d x w): O(w d^2) per step."""
    G = W2 @ W1 - Y
    W1_new = W1 - eta * (W2.T @ G)
    W2_new = W2 - eta * (G @ (W1_new if order == "sequential" else W1).T)
    return W1_new, W2_new


def sqrtm_psd(xp: Any, M: Any) -> Any:
    """Square root of a symmetric positive semi-definite matrix by its eigendecomposition."""
    lam, Q = xp.linalg.eigh(M)
    return (Q * xp.sqrt(xp.maximum(lam, 0.0))[..., None, :]) @ mT(xp, Q)


def two_root_self_consistent_step(xp: Any, A: Any, Y: Any, eta: float, c: float) -> Any:
    """A - eta [ (A A^T + c^2 I)^{1/2} G + G (A^T A + c^2 I)^{1/2} ], with two decompositions."""
    d = A.shape[-1]
    eye = xp.eye(d, dtype=A.dtype)
    G = A - Y
    left = sqrtm_psd(xp, A @ mT(xp, A) + c * c * eye)
    right = sqrtm_psd(xp, mT(xp, A) @ A + c * c * eye)
    return A - eta * (left @ G + G @ right)

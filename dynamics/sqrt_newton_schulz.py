"""Matmul-only square roots for the self-consistent step: coupled Newton-Schulz (off by default).

The self-consistent direction (method.md section 3, equation (1)) is

    D = (A A^T + c^2 I)^{1/2} G + G (A^T A + c^2 I)^{1/2}.

``dynamics.steps.self_consistent_direction`` gets both roots from one symmetric eigendecomposition. On a
GPU a batch of d x d eigendecompositions (cuSOLVER's batched Jacobi, which CuPy uses for stacked input)
may be slow for d ~ 200; this module computes the two roots with matrix products only, so that a batch
runs as a few large batched GEMMs. The runner uses it when asked
(``simulate_batch(..., roots="newton_schulz")``); whether it becomes a backend's default
(``SELF_CONSISTENT_ROOTS`` in simulate.py) is decided by the GPU benchmark (bench/gpu_bench.py, parts
self_consistent_step, fig2_grid_newton_schulz and decision).

Coupled Newton-Schulz (Higham, Functions of Matrices, section 6.7). For SPD M with spectrum in (0, s]:

    Y_0 = M / s,  Z_0 = I,   T_k = (3 I - Z_k Y_k) / 2,   Y_{k+1} = Y_k T_k,   Z_{k+1} = T_k Z_k,

then Y_k -> (M/s)^{1/2} and Z_k -> (M/s)^{-1/2}; three matmuls per iteration. Y_k and Z_k are polynomials
in M, so the iteration acts on each eigenvalue lambda separately: with x_k the eigenvalue of Z_k Y_k,

    x_0 = lambda / s,   x_{k+1} = x_k (3 - x_k)^2 / 4,   y_k = sqrt(lambda / s) sqrt(x_k),

so the relative error of the root on that eigenvalue is |1 - sqrt(x_k)|, a function of lambda/s alone,
increasing as lambda/s decreases. Here lambda >= c^2 (M = A^T A + c^2 I) and s = ||M||_F >= ||M||_2, so the
number of iterations that reaches a relative accuracy ``tol`` on *every* eigenvalue is known before
iterating: :func:`iterations_needed` runs the scalar recurrence from x_0 = c^2 / s on the host. No
convergence test on the device, hence no host round trip inside the iteration.

Cost and limits:

- While x is small it grows by 9/4 per iteration (linear phase), then converges quadratically: about
  log(s / c^2) / log(2.25) + 5 iterations. For the paper's grid at d = 200 (c = sigma^2 w from 0.09 to 4e4,
  ||A||^2 up to about 1e4) that is from about 5 (lazy points, c^2 >= ||A||^2) to about 22 (c ~ 0.1).
  Each iteration is 3 batched d x d products on both roots (stacked as one batch of 2B).
- c = 0 (balanced dynamics) or s / c^2 beyond ~1e12: the smallest eigenvalues converge slowly (an
  eigenvalue lambda needs ~log(s/lambda)/0.81 iterations); an unconverged eigenvalue is
  underestimated by at most sqrt(lambda), so the *absolute* error of the root stays below
  sqrt(lambda_unconverged), but a tight relative tolerance needs many iterations. The iteration count
  is capped by ``max_iter``; the returned info says whether ``tol`` was reached for the bound. For c = 0
  keep the eigendecomposition (``self_consistent_direction``).
- Warm start: the iterates must be polynomials in M; starting from the previous step's root (which does
  not commute with the new M) makes the coupled iteration converge to a different matrix (off by
  O(step)), and the uncoupled Newton form X <- (X + X^{-1} M)/2 is unstable from such a start once
  cond(M) > 9. The speed of any polynomial iteration depends on the spectrum only, so what carries over
  from step to step is the spectral bound: lambda_min >= c^2 is exact and needs no warm start, and
  ``scale`` (an upper bound of ||M||_2, e.g. the previous step's value times a margin) may be passed to
  skip the Frobenius norm. What the previous root could buy is saved differently: the iteration count
  is computed, not searched for.
- float64: agreement with the eigendecomposition-based direction to about 1e-12 relative (tested to
  1e-10 in tests/dynamics/test_newton_schulz.py). float32: use tol ~ 1e-6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dynamics.steps import mT

#: default relative accuracy of each root, per eigenvalue, in exact arithmetic (float64)
DEFAULT_TOL = 1e-13
DEFAULT_MAX_ITER = 60


@dataclass(frozen=True)
class NSInfo:
    """What the iteration did: the most iterations any point ran, whether the bound promised ``tol`` within
    ``max_iter`` for every point, and the promised relative accuracy (per eigenvalue, exact arithmetic;
    NaN when the count was forced)."""

    iterations: int
    converged: bool
    bound: float


def iterations_needed(ratio_min: float, tol: float = DEFAULT_TOL, max_iter: int = DEFAULT_MAX_ITER) -> tuple[int, float]:
    """Iterations of coupled Newton-Schulz after which every eigenvalue with lambda/s >= ``ratio_min`` has
    its root to relative accuracy ``tol`` (exact arithmetic): runs x <- x (3 - x)^2 / 4 from x = ratio_min.

    Returns (iterations, achieved relative error 1 - sqrt(x)), capped at ``max_iter``.
    """
    x = float(min(max(ratio_min, 0.0), 1.0))
    err = 1.0 - math.sqrt(x)
    k = 0
    while err > tol and k < max_iter:
        x = x * (3.0 - x) ** 2 / 4.0
        err = abs(1.0 - math.sqrt(x))
        k += 1
    return k, err


def newton_schulz_sqrt(xp: Any, M: Any, scale: Any, iterations: Any) -> tuple[Any, Any]:
    """Coupled Newton-Schulz on a batch of SPD matrices M (B, ..., n, n); matmuls only (3 per iteration).

    ``scale``: (B, ..., 1, 1) upper bounds of ||M||_2. ``iterations``: an int for the whole batch, or a
    host array (B,) of counts per batch element: the batch is then ordered by count so that each
    iteration works on a prefix (elements that are done drop out; no wasted products).
    Returns (M^{1/2}, M^{-1/2}), unscaled.
    """
    n = M.shape[-1]
    eye = xp.eye(n, dtype=M.dtype)
    counts = np.broadcast_to(np.asarray(iterations, dtype=np.int64), (M.shape[0],))
    order = np.argsort(-counts, kind="stable")
    permuted = not np.array_equal(order, np.arange(order.size))
    if permuted:
        order_x = xp.asarray(order)
        M, scale = M[order_x], scale[order_x]
    counts = counts[order]
    Y = M / scale
    Z = xp.broadcast_to(eye, M.shape).copy()
    kmax = int(counts[0]) if counts.size else 0
    for k in range(kmax):
        m = int(np.count_nonzero(counts > k))  # a prefix, since counts are sorted descending
        if m == counts.size:
            T = 1.5 * eye - 0.5 * xp.matmul(Z, Y)
            Y, Z = xp.matmul(Y, T), xp.matmul(T, Z)
        else:
            T = 1.5 * eye - 0.5 * xp.matmul(Z[:m], Y[:m])
            Y[:m], Z[:m] = xp.matmul(Y[:m], T), xp.matmul(T, Z[:m])
    root = xp.sqrt(scale)
    Y, Z = Y * root, Z / root
    if permuted:
        inv = xp.asarray(np.argsort(order))
        Y, Z = Y[inv], Z[inv]
    return Y, Z


def sqrt_pair(
    xp: Any,
    A: Any,
    c: Any,
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    scale: Any = None,
    iterations: int | None = None,
) -> tuple[Any, Any, NSInfo]:
    """(A A^T + c^2 I)^{1/2} and (A^T A + c^2 I)^{1/2} for a batch A (B, d, d), c (B, 1, 1), matmuls only.

    The two roots of a point share their spectrum (A is square), hence one scale and one iteration
    count; they run stacked as (B, 2, d, d). ``scale`` (B, 1, 1): upper bounds of ||A^T A + c^2 I||_2;
    default min(||A^T A + c^2 I||_F, ||A||_F^2 + c^2) (two device reductions). ``iterations``: force one
    count for the whole batch (benchmarks; no host transfer); default: per point,
    :func:`iterations_needed` (c^2 / scale), one (B,)-sized transfer to the host, and the batch shrinks
    as points finish (lazy points need ~8 iterations, active ones up to ~22 at d = 200).
    """
    d = A.shape[-1]
    eye = xp.eye(d, dtype=A.dtype)
    c2 = c * c
    M_right = xp.matmul(mT(xp, A), A) + c2 * eye
    M_left = xp.matmul(A, mT(xp, A)) + c2 * eye
    if scale is None:
        frob_M = xp.sqrt(xp.sum(M_right * M_right, axis=(-2, -1), keepdims=True))
        frob_A2 = xp.sum(A * A, axis=(-2, -1), keepdims=True) + c2
        scale = xp.minimum(frob_M, frob_A2)
    if iterations is None:
        ratios = _to_host(xp, c2 / scale).reshape(-1).astype(np.float64)
        ratios = np.where(np.isfinite(ratios), ratios, 0.0)
        counts = np.zeros(ratios.size, dtype=np.int64)
        bound = 0.0
        for r in np.unique(ratios):
            k, err = iterations_needed(float(r), tol, max_iter)
            counts[ratios == r] = k
            bound = max(bound, err)
        iters: Any = counts
        n_iter = int(counts.max()) if counts.size else 0
    else:
        iters, n_iter, bound = int(iterations), int(iterations), math.nan
    M = xp.stack([M_left, M_right], axis=1)  # (B, 2, d, d)
    root, _ = newton_schulz_sqrt(xp, M, scale[:, None], iters)
    return root[:, 0], root[:, 1], NSInfo(n_iter, bound <= tol, bound)


def self_consistent_direction_ns(
    xp: Any,
    A: Any,
    G: Any,
    c: Any,
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    scale: Any = None,
    iterations: int | None = None,
) -> tuple[Any, NSInfo]:
    """(A A^T + c^2 I)^{1/2} G + G (A^T A + c^2 I)^{1/2} with matmuls only; same shapes and meaning as
    ``dynamics.steps.self_consistent_direction`` (which needs the eigendecomposition of A^T A)."""
    left, right, info = sqrt_pair(xp, A, c, tol=tol, max_iter=max_iter, scale=scale, iterations=iterations)
    return xp.matmul(left, G) + xp.matmul(G, right), info


def self_consistent_step_ns(xp: Any, A: Any, G: Any, eta: Any, c: Any, **kw: Any) -> tuple[Any, NSInfo]:
    """A - eta D with D from :func:`self_consistent_direction_ns` (the drop-in for ``self_consistent_step``)."""
    D, info = self_consistent_direction_ns(xp, A, G, c, **kw)
    return A - eta * D, info


def _to_host(xp: Any, a: Any) -> np.ndarray:
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)

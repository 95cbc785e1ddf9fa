"""Newton-Schulz on batches (dynamics/sqrt_newton_schulz.py): per-point iteration counts in any order give each
point what it gets alone; the counts follow the documented rule (iterations_needed of c^2 / scale, the scale
min(||A^T A + c^2 I||_F, ||A||_F^2 + c^2) of that point, not of the batch); the options reach the iteration.
References: each point run alone (same arithmetic: 1e-12 relative, the products of a stack are those of its
matrices), and the rule computed here with numpy.linalg.norm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynamics.sqrt_newton_schulz import (
    _to_host,
    iterations_needed,
    newton_schulz_sqrt,
    self_consistent_direction_ns,
    self_consistent_step_ns,
    sqrt_pair,
)


def _spd(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    X = rng.standard_normal((n, n))
    return scale * (X @ X.T + 0.5 * np.eye(n))


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.allclose(a, b, rtol=1e-12, atol=0.0))


def test_per_point_counts_in_any_order_equal_each_point_alone() -> None:
    rng = np.random.default_rng(3)
    M = np.stack([_spd(rng, 4, s) for s in (1.0, 30.0, 0.2, 5.0)])
    scale = np.linalg.norm(M, axis=(-2, -1), keepdims=True)  # Frobenius >= spectral norm
    counts = np.array([1, 5, 3, 5])  # unsorted, with a tie
    given = M.copy()
    Y, Z = newton_schulz_sqrt(np, M, scale, counts)
    assert np.array_equal(M, given)  # the batch is not changed in place
    for j in range(4):
        y, z = newton_schulz_sqrt(np, M[j : j + 1], scale[j : j + 1], int(counts[j]))
        assert _close(Y[j], y[0]) and _close(Z[j], z[0]), j
        one_more, _ = newton_schulz_sqrt(np, M[j : j + 1], scale[j : j + 1], int(counts[j]) + 1)
        assert not _close(Y[j], one_more[0])  # not converged yet: the count matters


def test_an_empty_batch() -> None:
    Y, Z = newton_schulz_sqrt(np, np.zeros((0, 3, 3)), np.ones((0, 1, 1)), np.zeros(0, dtype=np.int64))
    assert Y.shape == Z.shape == (0, 3, 3)


def _rule(A: np.ndarray, c: np.ndarray, tol: float, scale: np.ndarray | None = None) -> tuple[int, float]:
    """iterations_needed(c^2 / scale) per point, scale = min(||A^T A + c^2 I||_F, ||A||_F^2 + c^2) unless given."""
    its, bound = [], 0.0
    for j in range(A.shape[0]):
        c2 = float(c[j, 0, 0]) ** 2
        if scale is None:
            M = A[j].T @ A[j] + c2 * np.eye(A.shape[-1])
            s = min(np.linalg.norm(M), np.linalg.norm(A[j]) ** 2 + c2)
        else:
            s = float(scale[j, 0, 0])
        k, err = iterations_needed(c2 / s, tol)
        its.append(k)
        bound = max(bound, err)
    return max(its), bound


@pytest.mark.parametrize("tol", [1e-13, 1e-4])
def test_iteration_counts_follow_the_rule_per_point(tol: float) -> None:
    rng = np.random.default_rng(5)
    A = np.stack([rng.standard_normal((5, 5)) * s for s in (0.01, 1.0, 100.0)])
    c = np.array([1.0, 0.3, 0.5]).reshape(3, 1, 1)
    G = rng.standard_normal((3, 5, 5))
    _, info = self_consistent_direction_ns(np, A, G, c, tol=tol)
    k, bound = _rule(A, c, tol)
    assert info.iterations == k and math.isclose(info.bound, bound, rel_tol=1e-9) and info.converged
    _, _, pair = sqrt_pair(np, A, c, tol=tol)
    assert (pair.iterations, pair.bound) == (info.iterations, info.bound)


def test_a_given_scale_and_a_forced_count_are_used() -> None:
    rng = np.random.default_rng(6)
    A, G = rng.standard_normal((2, 4, 4)), rng.standard_normal((2, 4, 4))
    c = np.full((2, 1, 1), 0.5)
    scale = np.full((2, 1, 1), 1e4)  # a loose upper bound: more iterations than the default's
    _, info = self_consistent_direction_ns(np, A, G, c, scale=scale)
    assert info.iterations == _rule(A, c, 1e-13, scale)[0] > _rule(A, c, 1e-13)[0]
    new, info = self_consistent_step_ns(np, A, G, np.full((2, 1, 1), 0.1), c, iterations=2)
    assert info.iterations == 2 and math.isnan(info.bound)
    D2, _ = self_consistent_direction_ns(np, A, G, c, iterations=2)
    assert _close(new, A - 0.1 * D2)


def test_zero_matrix_and_zero_c_is_reported_unconverged() -> None:
    """c^2 / scale = 0 / 0: no bound on the smallest eigenvalue, so the cap, and not converged."""
    with np.errstate(invalid="ignore"):  # the roots of 0 / 0 are NaN; the report is what is checked
        _, _, info = sqrt_pair(np, np.zeros((1, 3, 3)), np.zeros((1, 1, 1)), max_iter=7)
    assert info.iterations == 7 and not info.converged and info.bound == 1.0


def test_to_host_of_host_arrays() -> None:
    assert _to_host(np, np.array([1.5])).tolist() == [1.5]
    assert _to_host(np, [1.0, 2.0]).tolist() == [1.0, 2.0]


def test_iteration_count_edges() -> None:
    """ratio >= 1 (c^2 bounds the whole spectrum): no iteration, exact; tol = 0 is met by an exact root."""
    assert iterations_needed(1.0) == (0, 0.0)
    assert iterations_needed(1.5) == (0, 0.0)  # clipped to 1
    assert iterations_needed(1.0, tol=0.0) == (0, 0.0)
    _, _, info = sqrt_pair(np, np.zeros((1, 3, 3)), np.ones((1, 1, 1)), tol=0.0)  # M = I, scale 1, ratio 1
    assert (info.iterations, info.converged, info.bound) == (0, True, 0.0)  # bound <= tol: converged


def test_sqrt_pair_of_an_empty_batch() -> None:
    left, right, info = sqrt_pair(np, np.zeros((0, 3, 3)), np.ones((0, 1, 1)))
    assert left.shape == right.shape == (0, 3, 3)
    assert (info.iterations, info.converged) == (0, True)

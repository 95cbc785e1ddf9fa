"""Exact width reduction (method.md section 4): GD on the QR-reduced weights is GD on the dense ones."""

import numpy as np
import pytest

from dynamics.initialisation import bartlett_factor, dense_weights, reduce_weights, wishart_weights
from dynamics.steps import gd_step
from dynamics.task import draw_task
from tests.reference import dense_gd_step


@pytest.mark.parametrize("order", ["simultaneous", "sequential"])
@pytest.mark.parametrize(("d", "w"), [(5, 10), (6, 37), (12, 150)])
def test_reduced_gd_equals_dense_gd(d: int, w: int, order: str) -> None:
    """50 steps; A agrees to 1e-10 relative (float64 round-off after 50 steps is ~1e-14 here; the margin
    covers the different summation order of the w-long and 2d-long inner products)."""
    task = draw_task(d, 2, 1.0, task_seed=3)
    W1, W2 = dense_weights(d, w, sigma2=w**-0.7, seed=11)
    M1, M2t = reduce_weights(W1, W2)
    assert M1.shape == (2 * d, d) and M2t.shape == (d, 2 * d)
    eta = 0.05
    for _ in range(50):
        W1, W2 = dense_gd_step(np, W1, W2, task.Y, eta, order)
        G = M2t @ M1 - task.Y
        M1, M2t = gd_step(np, M1[None], M2t[None], G[None], np.array(eta).reshape(1, 1, 1), order)
        M1, M2t = M1[0], M2t[0]
    A_dense, A_reduced = W2 @ W1, M2t @ M1
    assert np.linalg.norm(A_reduced - A_dense) <= 1e-10 * np.linalg.norm(A_dense)
    # and it did move: the test is not vacuous
    assert np.linalg.norm(A_dense - task.Y) < 0.9 * np.linalg.norm(task.Y)


def test_bartlett_factor_shape_and_structure() -> None:
    R = bartlett_factor(4, 50, 0.3, seed=1)
    assert R.shape == (8, 8)
    assert np.allclose(np.tril(R, -1), 0.0)
    assert (np.diag(R) > 0).all()


def test_bartlett_draw_has_the_wishart_law() -> None:
    """X^T X ~ Wishart(w, sigma^2 I): E[S_ij] = w sigma^2 delta_ij, Var[S_ij] = w sigma^4 (1 + delta_ij).

    Over n = 4000 draws the sample mean of each entry of S / (sigma^2 w) has standard error
    sqrt((1 + delta_ij) / (w n)); we check every entry within 5 standard errors (a false alarm has
    probability < 1e-4 over the 36 distinct entries), and the variance of the entries to 10%.
    The same checks run on dense draws, so the test would catch a wrong law in either.
    """
    d, w, sigma2, n = 3, 40, 0.5, 4000
    for draw in ("bartlett", "dense"):
        S = np.empty((n, 2 * d, 2 * d))
        for s in range(n):
            if draw == "bartlett":
                R = bartlett_factor(d, w, sigma2, seed=s)
            else:
                W1, W2 = dense_weights(d, w, sigma2, seed=s)
                R = np.concatenate([W1, W2.T], axis=1)
            S[s] = R.T @ R
        scaled = S / (sigma2 * w)
        mean = scaled.mean(axis=0)
        eye = np.eye(2 * d)
        se = np.sqrt((1 + eye) / (w * n))
        assert (np.abs(mean - eye) < 5 * se).all(), draw
        var = (S / sigma2).var(axis=0)
        assert np.allclose(var, w * (1 + eye), rtol=0.1), draw


def test_wishart_weights_give_A0_with_the_dense_law() -> None:
    """A0 = M2^T M1 has the law of W2 W1: entries of mean 0 and variance sigma^4 w (checked to 5%)."""
    d, w, sigma2 = 4, 30, 0.2
    a_w = np.array([(lambda m: m[1] @ m[0])(wishart_weights(d, w, sigma2, s)) for s in range(3000)])
    a_d = np.array([(lambda m: m[1] @ m[0])(dense_weights(d, w, sigma2, s)) for s in range(3000)])
    for a in (a_w, a_d):
        assert abs(a.mean()) < 5 * np.sqrt(sigma2**2 * w / a.size)
        assert np.isclose(a.var(), sigma2**2 * w, rtol=0.05)

"""Matmul-only square roots (dynamics/sqrt_newton_schulz.py) against the eigendecomposition, on NumPy.

Tolerance: the Newton-Schulz direction agrees with ``self_consistent_direction`` (one eigh of A^T A) to
1e-10 relative in float64 (measured ~1e-14: both are backward stable; the iteration count is chosen so that
the exact-arithmetic error is below 1e-13 on every eigenvalue).
"""

import math
from typing import Any

import numpy as np
import pytest

from dynamics.initialisation import initial_weights
from dynamics.sqrt_newton_schulz import (
    iterations_needed,
    newton_schulz_sqrt,
    self_consistent_direction_ns,
    self_consistent_step_ns,
    sqrt_pair,
)
from dynamics.steps import gram_eigh, mT, self_consistent_direction, self_consistent_step
from dynamics.task import draw_task
from tests.reference import sqrtm_psd

xp = np
TOL64 = 1e-10


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _batch(d: int, cs: list[float], scales: list[float], seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of A's of very different sizes (incl. near the target Y), G = A - Y, thresholds c."""
    rng = np.random.default_rng(seed)
    task = draw_task(d, 3, 1.0, seed)
    A = np.stack([rng.standard_normal((d, d)) * s for s in scales])
    A[-1] += 0.9 * task.Y  # an A close to the target: large, nearly low rank + noise
    c = np.asarray(cs, dtype=np.float64).reshape(-1, 1, 1)
    return A, A - task.Y, c


def test_iterations_needed_follows_the_scalar_recurrence() -> None:
    assert iterations_needed(1.0, 1e-13) == (0, 0.0)
    k_small, err_small = iterations_needed(1e-6, 1e-13)
    k_big, err_big = iterations_needed(1e-2, 1e-13)
    assert err_small <= 1e-13 and err_big <= 1e-13
    assert k_big < k_small <= 25  # ~ log(1e6)/log(2.25) + 5
    # monotone in the ratio
    ks = [iterations_needed(10.0**-e, 1e-13)[0] for e in range(0, 13)]
    assert ks == sorted(ks)
    # c = 0: never promised within the cap
    k0, err0 = iterations_needed(0.0, 1e-13, max_iter=40)
    assert k0 == 40 and err0 == 1.0


@pytest.mark.parametrize("ratio", [1e-8, 1e-4, 0.3, 1.0])
def test_newton_schulz_root_of_spd_matrices(ratio: float) -> None:
    """M with spectrum in [ratio, 1] * s: the root and the inverse root agree with eigh's."""
    rng = np.random.default_rng(1)
    n = 30
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(ratio, 1.0, n) * 7.0
    M = ((Q * lam) @ Q.T)[None]
    s = np.linalg.norm(M, axis=(-2, -1), keepdims=True)  # Frobenius >= ||M||_2
    k, _ = iterations_needed(float(lam.min() / s.ravel()[0]), 1e-13)
    root, inv_root = newton_schulz_sqrt(xp, M, s, k)
    assert _rel(root, sqrtm_psd(xp, M)) < 1e-12
    exact_inv = ((Q / np.sqrt(lam)) @ Q.T)[None]
    assert _rel(inv_root, exact_inv) < 1e-12 / math.sqrt(ratio)  # the inverse root carries cond(M)^(1/2)


def test_sqrt_pair_matches_two_eigendecompositions() -> None:
    d = 24
    A, _, c = _batch(d, [0.05, 1.0, 30.0, 2.0], [1e-3, 1.0, 0.5, 0.2])
    left, right, info = sqrt_pair(xp, A, c)
    eye = np.eye(d)
    assert info.converged and info.bound <= 1e-13
    assert _rel(left, sqrtm_psd(xp, A @ mT(xp, A) + c * c * eye)) < TOL64
    assert _rel(right, sqrtm_psd(xp, mT(xp, A) @ A + c * c * eye)) < TOL64


@pytest.mark.parametrize("d", [8, 40])
def test_direction_matches_one_decomposition_direction(d: int) -> None:
    """Per point, across thresholds from 0.05 (active, cond ~1e6) to 1e4 (lazy), A tiny to A ~ Y."""
    cs = [0.05, 0.5, 5.0, 1e2, 1e4, 3.0]
    A, G, c = _batch(d, cs, [1e-3, 1.0, 0.1, 2.0, 1.0, 0.1], seed=d)
    s2, V = gram_eigh(xp, A)
    ref = self_consistent_direction(xp, A, G, c, s2, V)
    D, info = self_consistent_direction_ns(xp, A, G, c)
    assert info.converged
    for i in range(len(cs)):
        assert _rel(D[i], ref[i]) < TOL64, (i, cs[i], _rel(D[i], ref[i]))
    # the per-point counts (batch reordered internally) give the same as each point alone
    for i in range(len(cs)):
        Di, _ = self_consistent_direction_ns(xp, A[i : i + 1], G[i : i + 1], c[i : i + 1])
        assert _rel(D[i], Di[0]) < 1e-13
    # a forced common count (no host transfer) at the batch's maximum gives the same directions
    Df, info_f = self_consistent_direction_ns(xp, A, G, c, iterations=info.iterations)
    assert math.isnan(info_f.bound) and not info_f.converged
    assert _rel(Df, ref) < TOL64


def test_trajectory_with_newton_schulz_matches_eigh_trajectory() -> None:
    """50 self-consistent steps from a real initialisation (active regime, d = 20, paper-like lr):
    the Newton-Schulz trajectory stays within 1e-10 relative of the eigh trajectory."""
    d, k = 20, 2
    task = draw_task(d, k, 1.0, 3)
    points = [(20**-2.0, 400), (20**-1.6, 400), (20**-1.0, int(20**2.2)), (20**-0.5, int(20**1.9))]  # (sigma2, w)
    A0 = []
    cs = []
    for j, (s2_, w) in enumerate(points):
        W1, W2 = initial_weights(d, w, s2_, j, "wishart")
        A0.append(W2 @ W1)
        cs.append(s2_ * w)
    A_e = np.stack(A0)
    A_n = A_e.copy()
    c = np.asarray(cs).reshape(-1, 1, 1)
    op = np.linalg.norm(task.A_star, 2)
    eta = np.where(c > d, 1.0 / (5.0 * c), 1.0 / (5.0 * op))
    Y = task.Y
    for _ in range(50):
        A_e = self_consistent_step(xp, A_e, A_e - Y, eta, c)
        A_n, info = self_consistent_step_ns(xp, A_n, A_n - Y, eta, c)
        assert info.converged
    assert np.all(np.isfinite(A_n))
    for i in range(len(points)):
        assert _rel(A_n[i], A_e[i]) < TOL64
    assert _rel(A_e[0], A0[0]) > 1e-3  # it moved


def test_balanced_limit_c_zero_is_reported_unconverged_but_finite() -> None:
    """c = 0: lambda_min may be ~0, no iteration count is promised; the result stays finite and close in
    absolute terms (an unconverged eigenvalue lambda is off by at most sqrt(lambda))."""
    d = 16
    A, G, _ = _batch(d, [0.0], [1.0])
    c = np.zeros((1, 1, 1))
    D, info = self_consistent_direction_ns(xp, A, G, c, max_iter=40)
    assert not info.converged and info.iterations == 40
    s2, V = gram_eigh(xp, A)
    ref = self_consistent_direction(xp, A, G, c, s2, V)
    assert np.all(np.isfinite(D))
    assert _rel(D, ref) < 1e-3


def test_float32() -> None:
    """float32 with tol 1e-6: within 1e-4 relative of the float64 eigh direction."""
    d = 24
    A, G, c = _batch(d, [0.1, 3.0, 50.0], [0.5, 1.0, 0.3])
    s2, V = gram_eigh(xp, A)
    ref = self_consistent_direction(xp, A, G, c, s2, V)
    D32, info = self_consistent_direction_ns(
        xp, A.astype(np.float32), G.astype(np.float32), c.astype(np.float32), tol=1e-6
    )
    assert D32.dtype == np.float32 and info.converged
    assert _rel(D32.astype(np.float64), ref) < 1e-4


# ---- the runner with Newton-Schulz roots (simulate_batch(..., roots="newton_schulz")) ---------------------
#
# Tolerance against the float64 NumPy eigh run (the default): every trajectory value within 1e-10 relative
# (errors with a floor of 1e-10 times the error at step 0), the spectrum within 1e-10 * s_1, integer metrics,
# step counts, stop reasons and the step of the minimum exactly equal. Measured at d = 20 over 60 steps:
# at most 3e-15 (errors, metrics) and 1.2e-14 * s_1 (spectrum).

NS_RTOL = 1e-10


def _runner_grid(dynamics: list[str]) -> list[Any]:
    from dynamics import SimulationRequest

    pts = [(-1.8, 2.0, 0, "none"), (-1.2, 2.2, 1, "paper"), (-0.6, 1.9, 2, "none"), (-2.0, 1.6, 3, "paper"),
           (-1.5, 2.5, 4, "none"), (-2.2, 1.75, 5, "paper")]  # fmt: skip
    return [
        SimulationRequest.model_validate(dict(
            d=20, rank=3, dynamics=dynamics, steps=60, lr_constant=5, record_every=1, spectrum_every=5,
            backend="numpy", gamma_sigma2=g, gamma_w=w, seed=s, stopping=st,
        ))  # fmt: skip
        for g, w, s, st in pts
    ]


def test_runner_with_newton_schulz_roots_matches_eigh_within_the_stated_tolerance() -> None:
    from dynamics import simulate_batch

    dynamics = ["gd", "self_consistent", "balanced"]
    reqs = _runner_grid(dynamics)
    eigh, ns = simulate_batch(reqs), simulate_batch(reqs, roots="newton_schulz")
    stops = set()
    for a, b in zip(eigh, ns, strict=True):
        for name in dynamics:
            ta, tb = a.trajectories[name], b.trajectories[name]
            sa, sb = a.summaries[name], b.summaries[name]
            assert (sa.steps_run, sa.stop_reason, sa.min_test_error_step) == (
                sb.steps_run, sb.stop_reason, sb.min_test_error_step
            )
            stops.add(sa.steps_run)
            scale = max(ta.metrics["train_error"][0], ta.metrics["test_error"][0])
            for col, x in ta.metrics.items():
                y = tb.metrics[col]
                if col in ("rank", "n_above_threshold"):
                    assert np.array_equal(x, y), (name, col)
                    continue
                floor = NS_RTOL * scale if col.endswith("_error") else 0.0
                assert np.allclose(y, x, rtol=NS_RTOL, atol=floor, equal_nan=True), (name, col)
            s1 = ta.spectrum[:, :1]
            assert np.all(np.abs(tb.spectrum - ta.spectrum) <= NS_RTOL * s1), name
            if name != "self_consistent":  # only the self-consistent step changes: the others are bit-identical
                assert all(np.array_equal(ta.metrics[c], tb.metrics[c], equal_nan=True) for c in ta.metrics), name
        dist_a, dist_b = a.comparison, b.comparison
        assert dist_a is not None and dist_b is not None
        assert np.allclose(dist_b.distance, dist_a.distance, rtol=NS_RTOL, atol=NS_RTOL * dist_a.max_distance)
    assert len(stops) >= 3
    # and it is a different computation (not the eigh path under another name)
    test_errors = [(a.trajectories["self_consistent"].metrics["test_error"],
                    b.trajectories["self_consistent"].metrics["test_error"]) for a, b in zip(eigh, ns, strict=True)]  # fmt: skip
    assert any(not np.array_equal(x, y) for x, y in test_errors)


def test_runner_refuses_an_unknown_root_method() -> None:
    from dynamics import simulate_batch

    with pytest.raises(ValueError, match="roots must be one of"):
        simulate_batch(_runner_grid(["self_consistent"])[:1], roots="cholesky")


def test_newton_schulz_is_not_the_default_on_any_backend() -> None:
    """Wiring it in is the one-line choice SELF_CONSISTENT_ROOTS["cupy"] = "newton_schulz" (issue 18: only
    once the GPU benchmark shows it wins)."""
    import importlib

    sim = importlib.import_module("dynamics.simulate")
    assert sim.SELF_CONSISTENT_ROOTS == {"numpy": "eigh", "cupy": "eigh"}

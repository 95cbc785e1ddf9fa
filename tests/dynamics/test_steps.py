"""The self-consistent step with one decomposition against the direct formula with two square roots."""

import numpy as np
import pytest

from dynamics.steps import balanced_step, lazy_step, self_consistent_step
from dynamics.task import draw_task
from tests.reference import sqrtm_psd, two_root_self_consistent_step


def _state(d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    task = draw_task(d, 3, 1.0, task_seed=seed)
    A = rng.standard_normal((d, d)) * 0.3 + 0.5 * task.A_star
    return A, task.Y


def _b(x: float) -> np.ndarray:
    return np.array(x, dtype=float).reshape(1, 1, 1)


@pytest.mark.parametrize("c", [0.05, 1.0, 7.0, 300.0])
@pytest.mark.parametrize("d", [4, 17, 40])
def test_one_decomposition_equals_two_square_roots(d: int, c: float) -> None:
    """Agreement to 1e-10 relative in the update direction: both are backward stable, the difference is
    a few ulps times the condition of the eigenproblems (well separated here)."""
    A, Y = _state(d)
    eta = 0.01
    ours = self_consistent_step(np, A[None], (A - Y)[None], _b(eta), _b(c))[0]
    ref = two_root_self_consistent_step(np, A, Y, eta, c)
    assert np.linalg.norm((ours - A) - (ref - A)) <= 1e-10 * np.linalg.norm(ref - A)


def test_balanced_is_self_consistent_at_zero_threshold() -> None:
    A, Y = _state(20, 1)
    eta = 0.01
    G = (A - Y)[None]
    bal = balanced_step(np, A[None], G, _b(eta))[0]
    direct = A - eta * (sqrtm_psd(np, A @ A.T) @ (A - Y) + (A - Y) @ sqrtm_psd(np, A.T @ A))
    assert np.linalg.norm(bal - direct) <= 1e-10 * np.linalg.norm(direct - A)


def test_balanced_handles_rank_deficient_A() -> None:
    """s = 0 directions contribute nothing (h is set to 0 there), no NaN."""
    d = 10
    A, Y = _state(d, 2)
    U, s, Vt = np.linalg.svd(A)
    s[4:] = 0.0
    A = (U * s) @ Vt
    bal = balanced_step(np, A[None], (A - Y)[None], _b(0.01))[0]
    direct = A - 0.01 * (sqrtm_psd(np, A @ A.T) @ (A - Y) + (A - Y) @ sqrtm_psd(np, A.T @ A))
    assert np.isfinite(bal).all()
    assert np.linalg.norm(bal - direct) <= 1e-8 * np.linalg.norm(direct - A)


def test_huge_threshold_approaches_lazy() -> None:
    """(A A^T + c^2)^{1/2} = c I + O(|A|^2 / c): the relative difference of the directions is O(|A|^2/c^2)."""
    A, Y = _state(15, 3)
    G = (A - Y)[None]
    s1 = np.linalg.norm(A, 2)
    for c in (1e2, 1e4, 1e6):
        eta = 1.0 / c
        sc = self_consistent_step(np, A[None], G, _b(eta), _b(c))[0] - A
        lz = lazy_step(np, A[None], G, _b(eta), _b(c))[0] - A
        rel = np.linalg.norm(sc - lz) / np.linalg.norm(lz)
        assert rel <= (s1 / c) ** 2, (c, rel)


@pytest.mark.parametrize("step", ["self_consistent", "balanced"])
def test_a_given_decomposition_is_reused_not_recomputed(step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner passes the decomposition of A^T A its metrics made (simulate.py): the step must not make
    another one; with it or without it, the same numbers."""
    from dynamics.steps import gram_eigh

    A, Y = _state(6)
    G, eta, c = (A - Y)[None], _b(0.01), _b(0.5)
    s2, V = gram_eigh(np, A[None])
    if step == "balanced":
        fresh = balanced_step(np, A[None], G, eta)
    else:
        fresh = self_consistent_step(np, A[None], G, eta, c)

    def no_eigh(*a: object, **kw: object) -> None:
        raise AssertionError("decomposed again")

    monkeypatch.setattr(np.linalg, "eigh", no_eigh)
    if step == "balanced":
        reused = balanced_step(np, A[None], G, eta, s2, V)
    else:
        reused = self_consistent_step(np, A[None], G, eta, c, s2, V)
    np.testing.assert_array_equal(reused, fresh)  # same decomposition, same arithmetic: bit for bit


@pytest.mark.parametrize("order", ["sequential", "simultaneous"])
def test_gd_step_into_given_buffers_gives_the_same_numbers(order: str) -> None:
    """The runner's buffers (out=, -eta G in G's buffer) change where the numbers go, not the numbers."""
    from dynamics.steps import gd_step
    from dynamics.task import error

    rng = np.random.default_rng(3)
    W1, W2, Y = rng.standard_normal((3, 8, 4)), rng.standard_normal((3, 4, 8)), rng.standard_normal((4, 4))
    eta = np.array([0.01, 0.02, 0.03]).reshape(3, 1, 1)
    G = np.matmul(W2, W1) - Y
    want = gd_step(np, W1, W2, G, eta, order)
    out = (np.full_like(W1, np.nan), np.full_like(W2, np.nan))
    G_copy = G.copy()
    got = gd_step(np, W1, W2, G_copy, eta, order, out=out, overwrite_g=True)
    assert got[0] is out[0] and got[1] is out[1]
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert np.array_equal(G_copy, (-eta) * G)  # G's buffer now holds -eta G
    squares = np.empty_like(G)
    assert np.array_equal(error(np, G, 4, out=squares), error(np, G, 4))
    assert np.array_equal(squares, G * G)

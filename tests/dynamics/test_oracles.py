"""Independent oracles for what the paper reports, written from method.md, not from the code under test:
the GD/self-consistent distance and its maximum from matrices computed here, the spectrum against
numpy.linalg.svd of A, and the stopping rules on hand-built histories at their boundaries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynamics import SimulationRequest, simulate
from dynamics.stopping import CODES, paper_stop_reason, stop_codes, stop_reason

D, K = 8, 2


def _request(**kw) -> SimulationRequest:  # type: ignore[no-untyped-def]
    base = dict(d=D, rank=K, sigma2=0.01, width=40, init="dense", backend="numpy", record_every=1, spectrum_every=1)
    base.update(kw)
    return SimulationRequest(**base)


def _task(r: SimulationRequest) -> tuple[np.ndarray, np.ndarray]:
    """method.md section 1, in the documented draw order: C, D, E from default_rng(task_seed)."""
    rng = np.random.default_rng(r.task_seed)
    C = rng.normal(0.0, r.rank**-0.25, (r.d, r.rank))
    Dm = rng.normal(0.0, r.rank**-0.25, (r.d, r.rank))
    E = rng.normal(0.0, 1.0, (r.d, r.d)) * r.noise_std
    A_star = C @ Dm.T
    return A_star, A_star + E


def _weights(r: SimulationRequest) -> tuple[np.ndarray, np.ndarray]:
    """method.md section 2, dense: W1 (w x d) then W2 (d x w), entries N(0, sigma^2), from default_rng(seed)."""
    rng = np.random.default_rng(r.seed)
    s = math.sqrt(r.sigma2)
    return rng.standard_normal((r.width, r.d)) * s, rng.standard_normal((r.d, r.width)) * s


def _psd_sqrt(M: np.ndarray) -> np.ndarray:
    U, S, _ = np.linalg.svd(M)  # M symmetric PSD: M = U S U^T
    return (U * np.sqrt(S)) @ U.T


def _trajectories(r: SimulationRequest) -> dict[str, list[np.ndarray]]:
    """A_0 .. A_steps of each dynamics, by the update rules of method.md section 3 (simultaneous GD)."""
    _, Y = _task(r)
    W1, W2 = _weights(r)
    eta, c = r.lr, r.threshold
    eye = np.eye(r.d)
    A0 = W2 @ W1
    out: dict[str, list[np.ndarray]] = {name: [A0] for name in ("gd", "self_consistent", "lazy", "balanced")}
    for _ in range(r.steps):
        G = W2 @ W1 - Y
        W1, W2 = W1 - eta * W2.T @ G, W2 - eta * G @ W1.T
        out["gd"].append(W2 @ W1)
        A = out["self_consistent"][-1]
        G = A - Y
        out["self_consistent"].append(A - eta * (_psd_sqrt(A @ A.T + c * c * eye) @ G + G @ _psd_sqrt(A.T @ A + c * c * eye)))
        A = out["lazy"][-1]
        out["lazy"].append(A - 2 * eta * c * (A - Y))
        A = out["balanced"][-1]
        G = A - Y
        out["balanced"].append(A - eta * (_psd_sqrt(A @ A.T) @ G + G @ _psd_sqrt(A.T @ A)))
    return out


# an explicit learning rate keeps the oracle free of the learning-rate rule; 60 steps: the distance between
# GD and the self-consistent dynamics rises and then falls again (both converge), so its maximum is not its
# last value
OR_REQ = dict(lr=0.05, steps=60, dynamics=["gd", "self_consistent", "lazy", "balanced"])


def test_distance_at_every_step_and_its_maximum() -> None:
    """distance(i) = (1/d^2) ||A_GD(i) - A_SC(i)||_F^2 at every step, max over the run, its natural log:
    to 1e-9 relative to ||A||_F^2 / d^2 (a difference of two nearby matrices after 60 steps of round-off)."""
    r = _request(**OR_REQ)
    res = simulate(r)
    traj = _trajectories(r)
    want = np.array([np.sum((a - b) ** 2) / D**2 for a, b in zip(traj["gd"], traj["self_consistent"], strict=True)])
    cmp = res.comparison
    assert cmp is not None
    assert cmp.step.tolist() == list(range(r.steps + 1))
    scale = max(np.sum(a * a) for a in traj["gd"]) / D**2
    np.testing.assert_allclose(cmp.distance, want, rtol=1e-9, atol=1e-9 * scale)
    assert 0 < int(np.argmax(want)) < r.steps and want.max() > 2 * want[-1]  # the maximum is not the last
    assert math.isclose(cmp.max_distance, want.max(), rel_tol=1e-9)
    assert math.isclose(cmp.log_max_distance, math.log(want.max()), rel_tol=0, abs_tol=1e-9)
    assert res.summary_dict()["comparison"]["max_distance"] == cmp.max_distance


@pytest.mark.parametrize("name", ["gd", "self_consistent", "lazy", "balanced"])
def test_spectrum_is_the_singular_values_of_A(name: str) -> None:
    """The recorded spectrum at each step is numpy.linalg.svd(A) (s, not s^2), to 1e-9 s_1; the train and test
    errors are (1/d^2) ||A - Y||_F^2 and (1/d^2) ||A - A*||_F^2 of the same A."""
    r = _request(**OR_REQ)
    res = simulate(r)
    A_star, Y = _task(r)
    As = _trajectories(r)[name]
    t = res.trajectories[name]
    assert t.spectrum_steps.tolist() == list(range(r.steps + 1))
    for j, A in enumerate(As):
        s = np.linalg.svd(A, compute_uv=False)
        np.testing.assert_allclose(t.spectrum[j], s, rtol=0, atol=1e-9 * s[0], err_msg=f"step {j}")
    np.testing.assert_allclose(t.metrics["train_error"], [np.sum((A - Y) ** 2) / D**2 for A in As], rtol=1e-9)
    np.testing.assert_allclose(t.metrics["test_error"], [np.sum((A - A_star) ** 2) / D**2 for A in As], rtol=1e-9)
    s_end = np.linalg.svd(As[-1], compute_uv=False)
    assert s_end[0] > 1.5  # far from 1: s and s^2 differ
    assert math.isclose(t.metrics["stable_rank"][-1], np.sum(s_end**2) / s_end[0] ** 2, rel_tol=1e-9)
    assert t.metrics["n_above_threshold"][-1] == np.sum(s_end > r.threshold)


# ---- stopping rules (method.md section 5), on hand-built histories -------------------------------------
# train falls by 0.1 per step (no plateau, no convergence) unless a case says otherwise; test falls

FALLING_TRAIN = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
FALLING_TEST = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]

CASES: list[tuple[str, list[float], list[float], int, str | None]] = [
    # a rise completing at i = 3 (t[1] < t[2] < t[3]) does not stop: the rule needs i > 3
    ("rise at i=3", FALLING_TRAIN[:4], [1.0, 0.5, 0.6, 0.7], 3, None),
    ("rise at i=4", FALLING_TRAIN[:5], [1.0, 0.9, 0.5, 0.6, 0.7], 4, "test_rising"),
    ("one rise only", FALLING_TRAIN[:5], [1.0, 0.9, 0.8, 0.5, 0.6], 4, None),
    ("flat is no rise", FALLING_TRAIN[:5], [1.0, 0.9, 0.5, 0.5, 0.6], 4, None),
    # a plateau at i = 3 does not stop either
    ("plateau at i=3", [1.0, 0.5, 0.3, 0.3 - 1e-4], FALLING_TEST[:4], 3, None),
    ("plateau at i=4", [1.0, 0.6, 0.5, 0.3, 0.3 - 1e-4], FALLING_TEST[:5], 4, "plateau"),
    # the plateau step: below 2e-4 stops; between 2e-4 and 2e-3 does not
    ("step 1.9e-4", [1.0, 0.6, 0.5, 0.3, 0.3 - 1.9e-4], FALLING_TEST[:5], 4, "plateau"),
    ("step 2.1e-4", [1.0, 0.6, 0.5, 0.3, 0.3 - 2.1e-4], FALLING_TEST[:5], 4, None),
    ("step 1e-3", [1.0, 0.6, 0.5, 0.3, 0.3 - 1e-3], FALLING_TEST[:5], 4, None),
    ("step 1.9e-3", [1.0, 0.6, 0.5, 0.3, 0.3 - 1.9e-3], FALLING_TEST[:5], 4, None),
    ("a rising step counts too", [1.0, 0.6, 0.5, 0.3, 0.3 + 1e-4], FALLING_TEST[:5], 4, "plateau"),
    # ... and only after a total drop train[0] - train[i] above 1e-2
    ("drop 1.1e-2", [0.3 + 1.1e-2, 0.31, 0.305, 0.3001, 0.3], FALLING_TEST[:5], 4, "plateau"),
    ("drop 0.9e-2", [0.3 + 0.9e-2, 0.305, 0.302, 0.3001, 0.3], FALLING_TEST[:5], 4, None),
    # train error just below / just above 1e-3, at any i >= 1
    ("train 0.999e-3", [1.0, 0.999e-3], [1.0, 0.9], 1, "train_converged"),
    ("train 1.001e-3", [1.0, 1.001e-3], [1.0, 0.9], 1, None),
    ("train 0.999e-3 at i=5", [1.0, 0.8, 0.6, 0.4, 0.2, 0.999e-3], FALLING_TEST, 5, "train_converged"),
    ("train 1.001e-3 at i=5", [1.0, 0.8, 0.6, 0.4, 0.2, 1.001e-3], FALLING_TEST, 5, None),
    # every comparison is strict: a value exactly at a threshold does not stop (0.02 - 0.01 is exactly 0.01
    # in binary; no two train errors above 1e-3 differ by exactly the double 2e-4)
    ("train exactly 1e-3", [1.0, 1e-3], [1.0, 0.9], 1, None),
    ("equal last two tests", FALLING_TRAIN[:5], [1.0, 0.9, 0.5, 0.6, 0.6], 4, None),
    ("drop exactly 1e-2", [0.02, 0.019, 0.015, 0.0101, 0.01], FALLING_TEST[:5], 4, None),
    ("drop just over 1e-2", [0.02 + 1e-12, 0.019, 0.015, 0.0101, 0.01], FALLING_TEST[:5], 4, "plateau"),
    # convergence wins over a rise on the same step
    ("converged and rising", [1.0, 0.8, 0.6, 0.4, 0.5e-3], [1.0, 0.9, 0.5, 0.6, 0.7], 4, "train_converged"),
]


@pytest.mark.parametrize(("case", "train", "test", "i", "want"), CASES, ids=[c[0] for c in CASES])
def test_paper_rules_at_their_boundaries(case: str, train: list, test: list, i: int, want: str | None) -> None:
    assert len(train) == len(test) == i + 1
    assert paper_stop_reason(train, test, i) == want
    assert stop_reason(train, test, i, 100, "paper") == want
    assert stop_reason(train, test, i, 100, "none") is None  # the rules are off
    assert stop_reason(train, test, i, i, "none") == "max_steps"


def test_divergence_is_strictly_above_the_blowup() -> None:
    """diverged: a non-finite error, or a train error strictly above ``blowup``; before the paper's rules."""
    for train, test, want in [
        ([1.0, 5.0], [1.0, 1.0], None),
        ([1.0, 5.0 + 1e-9], [1.0, 1.0], "diverged"),
        ([1.0, 0.5], [1.0, math.inf], "diverged"),
        ([1.0, math.nan], [1.0, 0.5], "diverged"),
        ([1.0, 1e-4], [1.0, math.nan], "diverged"),  # not train_converged
    ]:
        assert stop_reason(train, test, 1, 10, "paper", blowup=5.0) == want, (train, test)
        codes = stop_codes(np.array([train]), np.array([test]), 1, np.array([10]), np.array([True]), blowup=5.0)
        assert CODES[codes[0]] == want, (train, test)


def test_a_step_given_half_a_decomposition_makes_its_own() -> None:
    """The steps reuse (s^2, V) of A^T A only when both are given; with one of them (or a stale one) missing
    they decompose A themselves: the same step as with nothing given."""
    from dynamics.steps import balanced_step, gram_eigh, self_consistent_step

    rng = np.random.default_rng(1)
    A, Y = rng.standard_normal((1, 5, 5)), rng.standard_normal((1, 5, 5))
    eta, c = np.full((1, 1, 1), 0.05), np.full((1, 1, 1), 0.3)
    s2, V = gram_eigh(np, A)
    wrong_s2, wrong_V = s2 * 4.0, V[..., ::-1]
    want_sc = self_consistent_step(np, A, A - Y, eta, c)
    want_bal = balanced_step(np, A, A - Y, eta)
    np.testing.assert_allclose(self_consistent_step(np, A, A - Y, eta, c, s2, V), want_sc, rtol=1e-12)
    for half in ({"s2": wrong_s2}, {"V": wrong_V}):
        np.testing.assert_array_equal(self_consistent_step(np, A, A - Y, eta, c, **half), want_sc)
        np.testing.assert_array_equal(balanced_step(np, A, A - Y, eta, **half), want_bal)
    assert not np.allclose(self_consistent_step(np, A, A - Y, eta, c, wrong_s2, V), want_sc)  # both: reused


def test_vectorised_rules_at_their_boundaries() -> None:
    """stop_codes on every boundary case at once, each case's history padded to a common length (the padding
    lies after step i and is never read)."""
    by_i: dict[int, list[tuple[list, list, str | None]]] = {}
    for _, train, test, i, want in CASES:
        by_i.setdefault(i, []).append((train, test, want))
    for i, cases in by_i.items():
        n = len(cases)
        train = np.full((n, 8), np.nan)
        test = np.full((n, 8), np.nan)
        for p, (tr, te, _) in enumerate(cases):
            train[p, : i + 1], test[p, : i + 1] = tr, te
        codes = stop_codes(train, test, i, np.full(n, 100), np.ones(n, bool))
        assert [CODES[c] for c in codes] == [want for _, _, want in cases], i
        off = stop_codes(train, test, i, np.full(n, 100), np.zeros(n, bool))
        assert not off.any()


def test_a_run_stops_where_the_rules_say() -> None:
    """In a run, the first step at which the rules (written here from method.md) fire on the run's own
    recorded errors is where it stopped, and no earlier step fires."""
    r = _request(lr=None, lr_constant=50.0, sigma2=0.02, width=15, steps=750, stopping="paper", dynamics=["gd"])
    res = simulate(r)
    t = res.trajectories["gd"]
    tr, te = t.metrics["train_error"], t.metrics["test_error"]

    def fires(i: int) -> str | None:
        if tr[i] < 1e-3:
            return "train_converged"
        if i > 3 and te[i - 2] < te[i - 1] < te[i]:
            return "test_rising"
        if i > 3 and abs(tr[i] - tr[i - 1]) < 2e-4 and tr[0] - tr[i] > 1e-2:
            return "plateau"
        return None

    n = res.summaries["gd"].steps_run
    assert n < 750 and t.step.tolist() == list(range(n + 1))
    assert [fires(i) for i in range(1, n)] == [None] * (n - 1)
    assert fires(n) == res.summaries["gd"].stop_reason

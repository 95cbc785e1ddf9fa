"""lindyn against a transcription of the paper's own training loops (tests/reference/phase_diagram.py, from
aranguri/phase-diagram main.ipynb and dynamics.ipynb), run from the same task and the same dense initial
weights at small d, in float64.

Tolerances: lindyn runs GD on the QR-reduced weights when w >= 2d, forms the singular values from the
eigenvalues of A^T A and the self-consistent step from one decomposition, where the notebooks use the full
weights and three SVDs per step: the same numbers up to round-off, which the dynamics carry and amplify over
the steps. The largest differences measured over these cases: 1e-14 relative on the errors, stable ranks
and gap ratios, 7e-14 on the distances, 7e-13 s_1 on the singular values (from the Gram matrix they are
accurate to about eps s_1^2 / s_i, dynamics/metrics.py, so they are compared with an absolute tolerance in
units of s_1). RTOL = 1e-10 and SV_ATOL = 1e-10 s_1 leave a margin of 100 or more over those. Integer metrics
(rank, steps, the step of the minimum) and the stop reason are equal.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynamics import SimulationRequest, simulate
from tests.reference.phase_diagram import (
    draw_dense_weights,
    draw_task,
    dynamics_run,
    gd_run,
    paper_learning_rate,
)

RTOL = 1e-10
SV_ATOL = 1e-10  # times s_1


def _request(**kw) -> SimulationRequest:  # type: ignore[no-untyped-def]
    base = dict(d=10, rank=2, init="dense", backend="numpy", record_every=1, spectrum_every=1, task_seed=3, seed=5)
    base.update(kw)
    return SimulationRequest(**base)


def _reference_inputs(r: SimulationRequest, c_lr: float):  # type: ignore[no-untyped-def]
    A_star, E = draw_task(r.d, r.rank, r.noise_std, r.task_seed)
    W1, W2 = draw_dense_weights(r.d, r.width, r.sigma2, r.seed)
    # the notebooks' rule with w = d^gamma_w; the request's gamma_w is log(width)/log(d), so d^gamma_w is the
    # integer width up to round-off
    eta = paper_learning_rate(r.d, r.gamma_sigma2, r.gamma_w, A_star, c_lr)
    return A_star, E, W1, W2, eta


def _spectra_close(got: np.ndarray, want: list[np.ndarray]) -> None:
    want_arr = np.array(want)
    assert got.shape == want_arr.shape
    for s_got, s_want in zip(got, want_arr, strict=True):
        np.testing.assert_allclose(s_got, s_want, rtol=0, atol=SV_ATOL * s_want[0])


@pytest.mark.parametrize("order", ["sequential", "simultaneous"])
@pytest.mark.parametrize(
    ("noise_std", "sigma2", "width", "c_lr", "stop"),
    [
        # active (sigma^2 w = 0.3 < d), dense w < 2d: lindyn runs the full weights
        (1.0, 0.02, 15, 50.0, "test_rising"),
        # active, w >= 2d: lindyn runs the QR-reduced weights
        (1.0, 0.004, 64, 50.0, "test_rising"),
        (0.05, 0.02, 40, 50.0, "plateau"),
        # lazy (sigma^2 w = 20 > d): the other branch of the learning-rate rule
        (0.05, 0.5, 40, 5.0, "train_converged"),
    ],
)
def test_gd_with_paper_stopping_equals_main_ipynb(
    order: str, noise_std: float, sigma2: float, width: int, c_lr: float, stop: str
) -> None:
    """main.ipynb's run() (Figure 2): every recorded step's metrics and spectrum, the stop and the summary."""
    r = _request(noise_std=noise_std, sigma2=sigma2, width=width, lr_constant=c_lr, dynamics=["gd"],
                 stopping="paper", steps=750, gd_update=order)  # fmt: skip
    res = simulate(r)
    A_star, E, W1, W2, eta = _reference_inputs(r, c_lr)
    assert math.isclose(res.lr, eta, rel_tol=1e-12)
    ref = gd_run(A_star, E, W1, W2, eta, r.rank, iterations=751, order=order)
    m = ref.metrics
    s, t = res.summaries["gd"], res.trajectories["gd"]

    assert ref.stop == stop  # each rule is met (the rules themselves are compared, not the step limit)
    assert (s.stop_reason, s.steps_run) == (ref.stop, ref.i)
    assert t.step.tolist() == list(range(ref.i + 1))
    np.testing.assert_allclose(t.metrics["train_error"], m.losses, rtol=RTOL, atol=0)
    np.testing.assert_allclose(t.metrics["test_error"], m.gen_losses, rtol=RTOL, atol=0)
    np.testing.assert_allclose(t.metrics["stable_rank"], m.stable_ranks, rtol=RTOL, atol=0)
    np.testing.assert_allclose(t.metrics["gap_ratio"], m.ratios, rtol=RTOL, atol=0)
    assert t.metrics["rank"].tolist() == m.ranks
    _spectra_close(t.spectrum, m.svs)
    assert t.spectrum_steps.tolist() == list(range(ref.i + 1))

    want = m.summary()
    assert s.min_test_error_step == want["min_test_error_step"]
    assert s.rank_at_min == want["rank_at_min"]
    assert math.isclose(s.min_test_error, want["min_test_error"], rel_tol=RTOL)
    assert math.isclose(s.stable_rank_at_min, want["stable_rank_at_min"], rel_tol=RTOL)
    assert math.isclose(s.final_train_error, m.losses[-1], rel_tol=RTOL)
    assert math.isclose(s.final_test_error, m.gen_losses[-1], rel_tol=RTOL)


@pytest.mark.parametrize("order", ["sequential", "simultaneous"])
@pytest.mark.parametrize(("sigma2", "width"), [(0.01, 30), (0.002, 100)])
def test_gd_and_self_consistent_equal_dynamics_ipynb(order: str, sigma2: float, width: int) -> None:
    """dynamics.ipynb's run() (Figure 1: lr_constant 5, 100 iterations, no stopping): both dynamics' errors
    and spectra at every step, and the distance between them at every step, its maximum and its log."""
    n = 100
    r = _request(sigma2=sigma2, width=width, lr_constant=5.0, dynamics=["gd", "self_consistent"], steps=n,
                 gd_update=order)  # fmt: skip
    res = simulate(r)
    A_star, E, W1, W2, eta = _reference_inputs(r, 5.0)
    threshold = r.d**r.gamma_sigma2 * r.d**r.gamma_w  # the notebook's sigma_sq * w
    ref = dynamics_run(A_star, E, W1, W2, eta, threshold, iterations=n, order=order)
    gd, sc = res.trajectories["gd"], res.trajectories["self_consistent"]

    assert gd.step.tolist() == sc.step.tolist() == list(range(n + 1))
    # the notebook records the losses after each update: iterations 1..n
    np.testing.assert_allclose(gd.metrics["train_error"][1:], ref.losses_gd, rtol=RTOL, atol=0)
    np.testing.assert_allclose(gd.metrics["test_error"][1:], ref.gen_losses_gd, rtol=RTOL, atol=0)
    np.testing.assert_allclose(sc.metrics["train_error"][1:], ref.losses_approx, rtol=RTOL, atol=0)
    np.testing.assert_allclose(sc.metrics["test_error"][1:], ref.gen_losses_ap, rtol=RTOL, atol=0)
    _spectra_close(gd.spectrum, ref.svs_gd)
    _spectra_close(sc.spectrum, ref.svs_ap)

    cmp = res.comparison
    assert cmp is not None and cmp.step.tolist() == list(range(n + 1))
    # the distance is a difference of two nearby matrices: its round-off is relative to ||A||^2 / d^2,
    # not to the distance itself
    scale = max(np.linalg.norm(s) ** 2 for s in ref.svs_gd) / r.d**2
    np.testing.assert_allclose(cmp.distance, ref.distance, rtol=RTOL, atol=RTOL * scale)
    assert math.isclose(cmp.max_distance, ref.max_distance, rel_tol=RTOL)
    assert math.isclose(cmp.log_max_distance, ref.log_max_distance, rel_tol=0, abs_tol=RTOL)
    assert ref.max_distance > 0.0 and int(np.argmax(ref.distance)) > 0


@pytest.mark.parametrize("order", ["sequential", "simultaneous"])
def test_the_step_cap_counts_as_main_ipynb_counts_it(order: str) -> None:
    """main.ipynb's ``for i in range(n)`` measures A_0..A_{n-1} and stops at the cap with i = n - 1; lindyn's
    ``steps = n - 1`` (what ``lindyn reproduce figure2`` submits for the paper's n = 750) measures the same
    iterates and reaches the cap at the same iteration, with the same summary. A run that the paper's rules
    never stop (noise-free, slow learning rate) so that the cap decides."""
    from lindyn.commands.reproduce import PAPER_ITERATIONS, figure2_request

    n = 40
    r = _request(noise_std=0.0, sigma2=0.02, width=15, lr_constant=5000.0, dynamics=["gd"], stopping="paper",
                 steps=n - 1, gd_update=order)  # fmt: skip
    res = simulate(r)
    A_star, E, W1, W2, eta = _reference_inputs(r, 5000.0)
    ref = gd_run(A_star, E, W1, W2, eta, r.rank, iterations=n, order=order)
    s, t = res.summaries["gd"], res.trajectories["gd"]
    assert ref.stop == "max_steps" and ref.i == n - 1 and len(ref.metrics.losses) == n
    assert (s.stop_reason, s.steps_run) == ("max_steps", ref.i)
    assert t.step.tolist() == list(range(n))  # n iterates, as the notebook's n iterations
    np.testing.assert_allclose(t.metrics["test_error"], ref.metrics.gen_losses, rtol=RTOL, atol=0)
    want = ref.metrics.summary()
    assert s.min_test_error_step == want["min_test_error_step"]
    assert math.isclose(s.min_test_error, want["min_test_error"], rel_tol=RTOL)
    # and one more step would be one more iterate than the notebook measured
    assert simulate(r.model_copy(update={"steps": n})).summaries["gd"].steps_run == n
    base, _ = figure2_request(200, 30, ["gd"])
    assert PAPER_ITERATIONS == 750 and base["steps"] == 749 and base["gd_update"] == "sequential"

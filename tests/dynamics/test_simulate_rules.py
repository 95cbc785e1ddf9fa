"""The runner's small rules (dynamics/simulate.py) at their boundaries: the learning-rate rule at sigma^2 w = d,
which requests batch together (batch_key), progress over several batches, and the summary of a run that stops
at step 0. Expected values from the docstrings and method.md, computed here."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynamics import SimulationRequest, simulate, simulate_batch
from dynamics.simulate import batch_key, learning_rate
from dynamics.task import draw_task


def _req(**kw: object) -> SimulationRequest:
    base: dict[str, object] = dict(d=10, rank=2, sigma2=0.5, width=20, backend="numpy", steps=6)
    base.update(kw)
    return SimulationRequest(**base)  # type: ignore[arg-type]


def test_learning_rate_at_the_threshold_d() -> None:
    """eta = 1 / (c_lr ||A*||_op) unless sigma^2 w > d (strictly): at sigma^2 w = d exactly, the norm rule."""
    task = draw_task(10, 2, 1.0, 0)
    at = _req(lr_constant=4.0)
    assert at.threshold == 10.0
    assert learning_rate(at, task) == 1.0 / (4.0 * task.A_star_op_norm)
    above = _req(lr_constant=4.0, width=21)
    assert learning_rate(above, task) == 1.0 / (4.0 * 10.5)


def test_batch_key_groups_what_can_share_arrays() -> None:
    base = _req(dynamics=["gd", "lazy"])
    same = [_req(dynamics=["gd", "lazy"], seed=3), _req(dynamics=["gd", "lazy"], lr=0.01, steps=9, stopping="paper"),
            _req(dynamics=["gd", "lazy"], sigma2=0.7, record_every=2, spectrum_every=0)]
    for r in same:
        assert batch_key(r) == batch_key(base)
    other = [_req(dynamics=["gd", "lazy"], d=11), _req(dynamics=["gd", "lazy"], rank=3),
             _req(dynamics=["gd", "lazy"], noise_std=0.5), _req(dynamics=["gd", "lazy"], task_seed=1),
             _req(dynamics=["gd", "lazy"], dtype="float32"), _req(dynamics=["gd", "lazy"], backend="auto"),
             _req(dynamics=["gd"]), _req(dynamics=["gd", "lazy"], gd_update="sequential"),
             _req(dynamics=["gd", "lazy"], width=5, init="dense")]  # GD's inner width 5, not 20
    for r in other:
        assert batch_key(r) != batch_key(base), r
    # without GD the width does not shape any array: one batch
    assert batch_key(_req(dynamics=["lazy"], width=5)) == batch_key(_req(dynamics=["lazy"], width=400))


def test_progress_over_several_batches_counts_every_point_step() -> None:
    """Two batches (d = 4 and d = 5): progress counts point-steps over both, never backwards, ends at the total."""
    reqs = [_req(d=4, rank=1, width=8, steps=200, dynamics=["lazy"]),
            _req(d=5, rank=1, width=8, steps=300, dynamics=["lazy"]),
            _req(d=4, rank=1, width=8, steps=100, dynamics=["lazy"], seed=1)]
    calls: list[tuple[int, int]] = []
    results = simulate_batch(reqs, progress=lambda done, total: calls.append((done, total)))
    assert {t for _, t in calls} == {600}
    done = [c for c, _ in calls]
    assert done == sorted(done) and done[-1] == 600
    assert any(300 < c < 600 for c in done)  # the second batch continues from the first batch's 300
    assert [r.request["d"] for r in results] == [4, 5, 4]  # the order of the requests
    assert [r.summaries["lazy"].steps_run for r in results] == [200, 300, 100]


def test_zero_steps() -> None:
    """steps = 0: A_0 is measured and recorded, the minimum is at step 0, and the run stops there."""
    res = simulate(_req(steps=0, dynamics=["gd", "self_consistent"]))
    for name in ("gd", "self_consistent"):
        s = res.summaries[name]
        assert (s.steps_run, s.stop_reason, s.min_test_error_step) == (0, "max_steps", 0)
        assert s.min_test_error == s.final_test_error
        assert res.trajectories[name].step.tolist() == [0]
        assert res.trajectories[name].spectrum_steps.tolist() == [0]
    assert res.comparison is not None and res.comparison.step.tolist() == [0]
    assert res.comparison.distance[0] == 0.0  # same A_0
    assert res.comparison.max_distance == 0.0 and res.comparison.log_max_distance == -math.inf


@pytest.mark.parametrize("every", [3, 4])
def test_recorded_steps(every: int) -> None:
    """Recorded every record_every steps and at the last; spectra every spectrum_every steps and at the last."""
    res = simulate(_req(steps=10, record_every=every, spectrum_every=every, dynamics=["lazy"]))
    want = sorted({*range(0, 11, every), 10})
    t = res.trajectories["lazy"]
    assert t.step.tolist() == want and t.spectrum_steps.tolist() == want
    assert t.spectrum.shape == (len(want), 10)
    assert np.all(np.diff(t.spectrum, axis=1) <= 0)  # s_1 >= s_2 >= ...

"""No host round trips in the batched runner: it runs on tests/dynamics/strict_xp.py, a CuPy-like module
over NumPy whose arrays refuse implicit conversion to NumPy (as CuPy's do) and count every device-to-host
transfer. A NumPy call on a device array, or a mix of host and device arrays, raises there as on a GPU.

The bound (independent of the batch size B; n = dynamics with active points at step i):

- every step: 2 transfers per dynamics (the train and test errors, (B,) each, which the stopping rules
  need on the host) + 1 for the GD/self-consistent distance when both run;
- steps where some point records, takes a spectrum or stops: at most 5 more per dynamics (the four metric
  columns and the spectrum of the points concerned);
- after the loop: 2 per dynamics (stable rank and rank at the minimum).

Numerics on strict_xp are NumPy's operation for operation, so results must be bit-identical to NumPy's.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

from dynamics import SimulationRequest, simulate_batch
from dynamics.backend import Backend
from dynamics.result import SimulationResult
from dynamics.sqrt_newton_schulz import newton_schulz_sqrt, self_consistent_direction_ns, sqrt_pair
from tests.dynamics import strict_xp

sim = importlib.import_module("dynamics.simulate")  # the module (``dynamics.simulate`` is also the function)

ALL = ["gd", "self_consistent", "lazy", "balanced"]
STRICT = Backend(strict_xp, "strict", "cpu (strict_xp)")  # type: ignore[arg-type]

PER_DYNAMICS_EVERY_STEP = 2
PER_DYNAMICS_EVENT = 5
DISTANCE = 1
PER_DYNAMICS_END = 2


class StepCounts:
    """Device-to-host transfers per step of the runner's loop (marks taken where each step's first
    dynamics is advanced, and where the results are built)."""

    def __init__(self) -> None:
        self.start: dict[int, int] = {}
        self.end_mark: int | None = None
        self.total_end: int | None = None

    def per_step(self) -> dict[int, int]:
        steps = sorted(self.start)
        assert self.end_mark is not None
        bounds = [self.start[i] for i in steps] + [self.end_mark]
        return {i: bounds[j + 1] - bounds[j] for j, i in enumerate(steps)}

    def at_end(self) -> int:
        assert self.end_mark is not None and self.total_end is not None
        return self.total_end - self.end_mark


@pytest.fixture
def strict(monkeypatch: pytest.MonkeyPatch) -> StepCounts:
    """simulate_batch runs on strict_xp; transfers counted per step."""
    counts = StepCounts()
    advance, results = sim._advance, sim._results

    def counted_advance(be: Backend, st: Any, i: int, *args: Any) -> Any:
        counts.start.setdefault(i, strict_xp.transfers.d2h)
        return advance(be, st, i, *args)

    def counted_results(*args: Any) -> Any:
        counts.end_mark = strict_xp.transfers.d2h
        out = results(*args)
        counts.total_end = strict_xp.transfers.d2h
        return out

    monkeypatch.setattr(sim, "resolve_backend", lambda name="auto": STRICT)
    monkeypatch.setattr(sim, "_advance", counted_advance)
    monkeypatch.setattr(sim, "_results", counted_results)
    strict_xp.transfers.reset()
    return counts


def _req(**kw: Any) -> SimulationRequest:
    base: dict[str, Any] = dict(
        d=12, rank=3, gamma_sigma2=-1.5, gamma_w=2.0, dynamics=ALL, steps=40, lr_constant=5,
        record_every=5, spectrum_every=10, backend="numpy",
    )  # fmt: skip
    base.update(kw)
    return SimulationRequest.model_validate(base)


def _grid(**kw: Any) -> list[SimulationRequest]:
    """Six points of one batch that stop at different steps: active and lazy, paper stopping or none,
    one diverging (learning rate far too large), per-point record and spectrum intervals."""
    pts = [
        dict(gamma_sigma2=-1.8, gamma_w=2.0, seed=0, stopping="none"),
        dict(gamma_sigma2=-1.2, gamma_w=2.2, seed=1, stopping="paper", record_every=3),
        dict(gamma_sigma2=-0.6, gamma_w=1.9, seed=2, stopping="none", spectrum_every=0),
        dict(gamma_sigma2=-2.0, gamma_w=1.6, seed=3, stopping="paper", steps=25),
        dict(gamma_sigma2=-1.5, gamma_w=2.5, seed=4, stopping="none", lr=5.0),
        dict(gamma_sigma2=-1.0, gamma_w=2.3, seed=5, stopping="paper", spectrum_every=1),
    ]
    return [_req(**{**p, **kw}) for p in pts]


def _identical(a: SimulationResult, b: SimulationResult) -> None:
    """Bit-identical results (NaN where NaN)."""
    assert a.summaries.keys() == b.summaries.keys()
    for name in b.summaries:
        ta, tb = a.trajectories[name], b.trajectories[name]
        assert np.array_equal(ta.step, tb.step), name
        for col in tb.metrics:
            assert np.array_equal(ta.metrics[col], tb.metrics[col], equal_nan=True), (name, col)
        assert np.array_equal(ta.spectrum_steps, tb.spectrum_steps), name
        assert np.array_equal(ta.spectrum, tb.spectrum, equal_nan=True), name
        sa, sb = a.summaries[name].__dict__, b.summaries[name].__dict__
        assert sa.keys() == sb.keys()
        for key in sb:
            assert sa[key] == sb[key] or (sa[key] != sa[key] and sb[key] != sb[key]), (name, key, sa[key], sb[key])
    assert (a.comparison is None) == (b.comparison is None)
    if b.comparison is not None and a.comparison is not None:
        assert np.array_equal(a.comparison.step, b.comparison.step)
        assert np.array_equal(a.comparison.distance, b.comparison.distance, equal_nan=True)


# ---- the stand-in behaves as CuPy where it matters ------------------------------------------------------


def test_strict_arrays_refuse_implicit_conversion_and_count_transfers() -> None:
    xp = strict_xp
    xp.transfers.reset()
    a = xp.asarray(np.arange(6.0).reshape(2, 3))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        np.sum(a)  # a NumPy function on a device array
    with pytest.raises(TypeError):
        np.isnan(a)  # a NumPy ufunc on a device array
    with pytest.raises(TypeError, match="NumPy array mixed"):
        _ = a + np.ones(3)  # host and device arrays mixed
    with pytest.raises(TypeError, match="NumPy array mixed"):
        xp.matmul(a, np.ones((3, 2)))
    total = xp.sum(a)
    assert isinstance(total, xp.ndarray) and total.shape == ()  # reductions stay on the device
    assert xp.transfers.d2h == 0
    assert float(total) == 15.0 and int(total) == 15 and bool(total)
    assert a.get().tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert xp.transfers.d2h == 4
    assert isinstance(a[np.array([1])], xp.ndarray)  # a host index array is uploaded
    assert xp.transfers.h2d == 2


# ---- the runner on it ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gd_update", ["simultaneous", "sequential"])
def test_every_dynamics_runs_without_implicit_transfers_and_bit_identical(strict: StepCounts, gd_update: str) -> None:
    """All four dynamics, points stopping at different steps (paper rules, step limits, divergence),
    recording and spectra at per-point intervals: runs on strict arrays, same bits as NumPy."""
    reqs = _grid(gd_update=gd_update)
    res_strict = simulate_batch(reqs)
    assert strict_xp.transfers.d2h > 0
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sim, "resolve_backend", _numpy_backend)
        res_np = simulate_batch(reqs)
    for a, b in zip(res_strict, res_np, strict=True):
        assert a.backend == "strict" and b.backend == "numpy"
        _identical(a, b)
    steps_run = {r.summaries["gd"].steps_run for r in res_np}
    reasons = {s.stop_reason for r in res_np for s in r.summaries.values()}
    assert len(steps_run) >= 3 and {"diverged", "max_steps"} <= reasons


def _numpy_backend(name: str = "auto") -> Backend:
    from dynamics.backend import resolve_backend

    return resolve_backend("numpy")


def test_dense_gd_and_float32_run_on_strict_arrays(strict: StepCounts) -> None:
    """w < 2d (GD on the dense, w-wide weights) and float32 take other paths: strict there too."""
    dense = [_req(dynamics=["gd", "self_consistent"], width=15, gamma_w=None, stopping="paper", seed=s) for s in range(3)]
    f32 = _grid(dtype="float32")
    for reqs in (dense, f32):
        res = simulate_batch(reqs)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sim, "resolve_backend", _numpy_backend)
            ref = simulate_batch(reqs)
        for a, b in zip(res, ref, strict=True):
            _identical(a, b)


@pytest.mark.parametrize("B", [1, 4, 16])
def test_transfers_per_step_are_bounded_independently_of_the_batch(strict: StepCounts, B: int) -> None:
    """Same schedule for every point (no stopping rule, 30 steps, records every 5, spectra every 10):
    per step exactly 2 per dynamics + 1 (distance), plus 4 per dynamics where the points record (the
    four metric columns, once for the whole batch) and 1 per dynamics where they take a spectrum; 2 per
    dynamics at the end. The same counts for B = 1, 4 and 16."""
    reqs = [_req(seed=s, stopping="none", steps=30) for s in range(B)]
    simulate_batch(reqs)
    per_step = strict.per_step()
    n = len(ALL)
    assert sorted(per_step) == list(range(31))
    for i, count in per_step.items():
        recorded = i % 5 == 0 or i == 30
        spectrum = i % 10 == 0 or i == 30
        expected = n * PER_DYNAMICS_EVERY_STEP + DISTANCE + (n * 4 if recorded else 0) + (n if spectrum else 0)
        assert count == expected, (i, count, expected, strict_xp.transfers.where)
    assert strict.at_end() == n * PER_DYNAMICS_END


def test_newton_schulz_roots_add_one_transfer_per_self_consistent_step(strict: StepCounts) -> None:
    """roots="newton_schulz": the per-point iteration counts are one (B,) transfer per step (never one
    per iteration); the rest as with eigh, and the same bits as NumPy's Newton-Schulz run."""
    reqs = [_req(seed=s, stopping="none", steps=12, record_every=100, spectrum_every=0) for s in range(5)]
    res = simulate_batch(reqs, roots="newton_schulz")
    n = len(ALL)
    for i, count in strict.per_step().items():
        # records at 0; at the last step every point stops: records and spectra
        events = {0: n * 4, 12: n * 5}.get(i, 0)
        assert count == n * PER_DYNAMICS_EVERY_STEP + DISTANCE + (1 if i < 12 else 0) + events, (i, count)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sim, "resolve_backend", _numpy_backend)
        ref = simulate_batch(reqs, roots="newton_schulz")
    for a, b in zip(res, ref, strict=True):
        _identical(a, b)


def test_transfers_per_step_bound_with_points_stopping_at_different_steps(strict: StepCounts) -> None:
    """The mixed grid (24 points: four copies of the six, different seeds): no step exceeds the bound,
    which does not depend on the batch size."""
    reqs = [r.model_copy(update={"seed": r.seed + 10 * c}) for c in range(4) for r in _grid()]
    simulate_batch(reqs)
    per_step = strict.per_step()
    n = len(ALL)
    bound = n * (PER_DYNAMICS_EVERY_STEP + PER_DYNAMICS_EVENT) + DISTANCE
    assert max(per_step.values()) <= bound, (per_step, strict_xp.transfers.where)
    assert min(per_step.values()) >= 1
    assert strict.at_end() == n * PER_DYNAMICS_END
    # every transfer is an explicit Backend.to_host (no float()/int()/bool() of a device array anywhere)
    assert all(where.startswith("backend.py:") for where in strict_xp.transfers.where), strict_xp.transfers.where


# ---- the matmul-only square root ----------------------------------------------------------------------


def test_newton_schulz_transfers_once_per_call_and_never_inside_the_iteration() -> None:
    """Per-point iteration counts: one (B,) transfer per call; a forced count: none."""
    xp = strict_xp
    rng = np.random.default_rng(0)
    d, B = 10, 5
    A_h = rng.standard_normal((B, d, d))
    G_h = rng.standard_normal((B, d, d))
    c_h = np.array([0.05, 0.5, 5.0, 50.0, 1.0]).reshape(B, 1, 1)
    A, G, c = xp.asarray(A_h), xp.asarray(G_h), xp.asarray(c_h)
    xp.transfers.reset()
    D, info = self_consistent_direction_ns(xp, A, G, c)
    assert xp.transfers.d2h == 1 and info.converged
    D_np, _ = self_consistent_direction_ns(np, A_h, G_h, c_h)
    assert np.array_equal(D.get(), D_np)
    xp.transfers.reset()
    sqrt_pair(xp, A, c, iterations=info.iterations)
    newton_schulz_sqrt(xp, xp.matmul(xp.swapaxes(A, -1, -2), A) + xp.eye(d), xp.full((B, 1, 1), 1e3), np.arange(B) + 3)
    assert xp.transfers.d2h == 0

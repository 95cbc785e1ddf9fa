"""simulate / simulate_batch: batching, reproducibility, stopping, divergence, metrics."""

import math
import subprocess
import sys

import numpy as np
import pytest

from dynamics import SimulationRequest, simulate, simulate_batch
from dynamics.initialisation import initial_weights
from dynamics.simulate import learning_rate
from dynamics.stopping import paper_stop_reason, stop_reason
from dynamics.task import draw_task
from tests.reference import dense_gd_step, two_root_self_consistent_step

ALL = ["gd", "self_consistent", "lazy", "balanced"]


def req(**kw) -> SimulationRequest:  # type: ignore[no-untyped-def]
    base = dict(d=12, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, dynamics=ALL, steps=40, backend="numpy")
    base.update(kw)
    return SimulationRequest(**base)


def _same(a, b, tol: float) -> None:  # type: ignore[no-untyped-def]
    for name in a.summaries:
        sa, sb = a.summaries[name], b.summaries[name]
        assert sa.steps_run == sb.steps_run and sa.stop_reason == sb.stop_reason
        assert sa.min_test_error_step == sb.min_test_error_step
        for col in ("min_test_error", "stable_rank_at_min", "final_train_error", "final_test_error"):
            x, y = getattr(sa, col), getattr(sb, col)
            assert math.isclose(x, y, rel_tol=tol, abs_tol=0), (name, col, x, y)
        ta, tb = a.trajectories[name], b.trajectories[name]
        assert np.array_equal(ta.step, tb.step)
        for col, v in ta.metrics.items():
            np.testing.assert_allclose(v, tb.metrics[col], rtol=tol, atol=0, equal_nan=True)
        np.testing.assert_allclose(ta.spectrum, tb.spectrum, rtol=tol, atol=tol * ta.spectrum.max(initial=0))
    if a.comparison is not None:
        np.testing.assert_allclose(a.comparison.distance, b.comparison.distance, rtol=tol, atol=1e-300)


def test_batch_equals_each_point_alone() -> None:
    """A grid of 6 points (different sigma^2, w, seeds, stopping) run as one batch equals each run alone,
    to 1e-12 relative (batched BLAS may block the matmuls differently; float64 round-off ~1e-15)."""
    points = [
        req(gamma_sigma2=g, gamma_w=w, seed=s, stopping=stop, steps=st)
        for g, w, s, stop, st in [
            (-1.8, 1.9, 0, "paper", 60),
            (-1.2, 2.2, 1, "paper", 60),
            (-0.6, 2.0, 2, "none", 30),
            (-1.5, 1.8, 3, "paper", 45),
            (-2.0, 2.3, 4, "none", 60),
            (-1.0, 1.9, 5, "paper", 20),
        ]
    ]
    batch = simulate_batch(points)
    for p, res in zip(points, batch, strict=True):
        _same(res, simulate(p), 1e-12)
    # the batch had points stopping at different steps
    assert len({r.summaries["gd"].steps_run for r in batch}) > 1


def test_batch_groups_incompatible_requests_and_keeps_order() -> None:
    points = [req(d=8), req(d=10, dynamics=["gd"]), req(d=8, seed=4), req(d=10, width=7, gamma_w=None)]
    results = simulate_batch(points)
    assert [r.request["d"] for r in results] == [8, 10, 8, 10]
    assert results[3].request["width"] == 7
    _same(results[2], simulate(points[2]), 1e-12)


def test_same_request_gives_identical_results() -> None:
    a, b = simulate(req(stopping="paper")), simulate(req(stopping="paper"))
    _same(a, b, 0.0)
    c = simulate(req(seed=1))
    assert c.summaries["gd"].final_train_error != a.summaries["gd"].final_train_error


def test_trajectory_matches_reference_dynamics() -> None:
    """The runner's GD (dense, w < 2d) and self-consistent trajectories against the reference step functions."""
    r = req(width=15, gamma_w=None, init="dense", dynamics=["gd", "self_consistent"], steps=25, gd_update="sequential")
    res = simulate(r)
    task = draw_task(r.d, r.rank, r.noise_std, r.task_seed)
    eta = learning_rate(r, task)
    W1, W2 = initial_weights(r.d, 15, r.sigma2, r.seed, "dense")
    A = W2 @ W1
    gd_test, sc_test = [], []
    for _ in range(26):
        gd_test.append(np.sum((W2 @ W1 - task.A_star) ** 2) / r.d**2)
        sc_test.append(np.sum((A - task.A_star) ** 2) / r.d**2)
        W1, W2 = dense_gd_step(np, W1, W2, task.Y, eta, "sequential")
        A = two_root_self_consistent_step(np, A, task.Y, eta, r.threshold)
    np.testing.assert_allclose(res.trajectories["gd"].metrics["test_error"], gd_test, rtol=1e-10)
    np.testing.assert_allclose(res.trajectories["self_consistent"].metrics["test_error"], sc_test, rtol=1e-10)


def test_recording_and_spectrum_schedule() -> None:
    r = req(steps=23, record_every=5, spectrum_every=10)
    res = simulate(r)
    t = res.trajectories["gd"]
    assert t.step.tolist() == [0, 5, 10, 15, 20, 23]  # the final step is always recorded
    assert t.spectrum_steps.tolist() == [0, 10, 20, 23]
    assert t.spectrum.shape == (4, r.d)
    s = t.spectrum[1]
    assert (np.diff(s) <= 1e-12).all()  # descending
    # metrics from the spectrum
    assert math.isclose(t.metrics["stable_rank"][2], np.sum(s**2) / s[0] ** 2, rel_tol=1e-12)
    assert t.metrics["rank"][2] == np.sum(s > s[0] / 5)
    assert math.isclose(t.metrics["gap_ratio"][2], s[r.rank - 1] / s[r.rank], rel_tol=1e-12)
    assert t.metrics["n_above_threshold"][2] == np.sum(s > r.threshold)


def test_summary_at_minimum_is_exact() -> None:
    """stable_rank_at_min is that of A at the step of minimal test error (recorded there with record_every=1)."""
    res = simulate(req(steps=60, stopping="paper"))
    for name, s in res.summaries.items():
        t = res.trajectories[name]
        j = int(np.nonzero(t.step == s.min_test_error_step)[0][0])
        assert s.min_test_error == t.metrics["test_error"].min() == t.metrics["test_error"][j]
        assert math.isclose(s.stable_rank_at_min, t.metrics["stable_rank"][j], rel_tol=1e-9)
        assert s.rank_at_min == t.metrics["rank"][j]


def test_paper_stopping_rules_unit() -> None:
    assert paper_stop_reason([1.0, 0.5, 0.0009], [1, 1, 1], 2) == "train_converged"
    assert paper_stop_reason([1, 0.9, 0.8, 0.7, 0.6], [1, 0.9, 0.8, 0.85, 0.9], 4) == "test_rising"
    assert paper_stop_reason([1, 0.9, 0.8, 0.7, 0.6], [1, 0.9, 0.8, 0.85, 0.9], 3) is None  # needs i > 3
    assert paper_stop_reason([1, 0.9, 0.8, 0.7, 0.6999], [1, 0.9, 0.8, 0.7, 0.6], 4) == "plateau"
    assert paper_stop_reason([0.7, 0.7, 0.7, 0.7, 0.6999], [1, 0.9, 0.8, 0.7, 0.6], 4) is None  # no progress
    assert stop_reason([1.0, math.nan], [1.0, 1.0], 1, 10, "none") == "diverged"
    assert stop_reason([1.0, 0.5], [1.0, 1.0], 1, 1, "none") == "max_steps"
    assert stop_reason([1.0, 1e-4], [1.0, 1.0], 1, 10, "none") is None  # rules off


def test_paper_stopping_in_a_run() -> None:
    res = simulate(req(steps=500, stopping="paper", dynamics=["gd"]))
    s = res.summaries["gd"]
    assert s.stop_reason in ("train_converged", "test_rising", "plateau")
    assert s.steps_run < 500
    test = res.trajectories["gd"].metrics["test_error"]
    if s.stop_reason == "test_rising":
        assert test[-3] < test[-2] < test[-1]


def test_divergence_is_reported_not_raised() -> None:
    res = simulate(req(lr=5.0, steps=200, dynamics=ALL))
    for name in ("gd", "self_consistent", "lazy", "balanced"):
        s = res.summaries[name]
        assert s.stop_reason == "diverged", name
        assert s.diverged_step == s.steps_run and 0 < s.steps_run < 200
        assert math.isfinite(s.min_test_error)
    assert res.diverged


def test_learning_rate_rule() -> None:
    task = draw_task(12, 2, 1.0, 0)
    active = req(gamma_sigma2=-1.5, gamma_w=2.0, lr_constant=5)  # sigma^2 w = 12^0.5 < d
    assert math.isclose(learning_rate(active, task), 1 / (5 * task.A_star_op_norm))
    lazy = req(gamma_sigma2=-0.5, gamma_w=2.0, lr_constant=50)  # sigma^2 w = 12^1.5 > d
    assert math.isclose(learning_rate(lazy, task), 1 / (50 * lazy.threshold))
    assert learning_rate(req(lr=0.123), task) == 0.123


def test_float32_tracks_float64() -> None:
    """float32 follows float64 to about 1e-4 relative over 30 steps (eps32 ~ 6e-8 amplified by the steps)."""
    a = simulate(req(steps=30, dtype="float64"))
    b = simulate(req(steps=30, dtype="float32"))
    for name in ALL:
        np.testing.assert_allclose(
            b.trajectories[name].metrics["train_error"], a.trajectories[name].metrics["train_error"], rtol=1e-4
        )


def test_task_shared_and_seeds_separate() -> None:
    a, b = simulate(req(seed=0)), simulate(req(seed=1))
    # step-0 metrics differ (other init), but the learning rate rule's ||A*|| is the same task
    assert a.lr == b.lr
    assert a.trajectories["gd"].metrics["train_error"][0] != b.trajectories["gd"].metrics["train_error"][0]


def test_numpy_backend_never_imports_cupy() -> None:
    code = (
        "import sys\n"
        "from dynamics import SimulationRequest, simulate\n"
        "simulate(SimulationRequest(d=4, rank=1, sigma2=0.1, width=9, steps=2, backend='numpy'))\n"
        "assert 'cupy' not in sys.modules, 'cupy imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_progress_is_reported_and_bounded() -> None:
    calls: list[tuple[int, int]] = []
    simulate(req(steps=1000, dynamics=["lazy"]), progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (1000, 1000)
    assert 10 <= len(calls) <= 110
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


@pytest.mark.parametrize("dyn", ALL)
def test_each_dynamics_alone_reduces_train_error(dyn: str) -> None:
    res = simulate(req(dynamics=[dyn], steps=30))
    tr = res.trajectories[dyn].metrics["train_error"]
    assert tr[-1] < tr[0]


def test_vectorised_stop_codes_equal_the_scalar_rule() -> None:
    """stop_codes (all points at once) agrees with stop_reason point by point on random histories that hit
    every rule (values near the thresholds, NaN, blow-ups)."""
    from dynamics.stopping import CODES, stop_codes

    rng = np.random.default_rng(0)
    n, T = 4000, 8
    train = np.abs(rng.normal(0.5, 0.3, (n, T)))
    train[rng.random((n, T)) < 0.1] *= 1e-3
    steps = rng.integers(0, 3, (n, T)) * 1e-4
    train[:, 1:] = np.where(rng.random((n, T - 1)) < 0.3, train[:, :-1] - steps[:, 1:], train[:, 1:])
    test = np.abs(rng.normal(0.5, 0.1, (n, T)))
    test[rng.random((n, T)) < 0.02] = np.nan
    train[rng.random((n, T)) < 0.02] = 1e300
    max_steps = rng.integers(1, T, n)
    paper = rng.random(n) < 0.8
    seen = set()
    for i in range(T):
        codes = stop_codes(train, test, i, max_steps, paper, blowup=1e200)
        for p in range(n):
            expect = stop_reason(train[p], test[p], i, int(max_steps[p]), "paper" if paper[p] else "none", 1e200)
            assert CODES[codes[p]] == expect, (p, i)
            seen.add(expect)
    assert seen == set(CODES)


def test_the_checkpoint_is_called_before_every_step_and_stops_the_run() -> None:
    """A checkpoint that raises at step 7 stops the run there (a cancel seen within one step); one that does
    not raise changes nothing."""

    class Stop(Exception):
        pass

    req = SimulationRequest(d=8, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, steps=500, stopping="none",
                            dynamics=["gd", "self_consistent"])
    calls: list[int] = []
    progress: list[int] = []

    def checkpoint() -> None:
        calls.append(1)
        if len(calls) == 8:  # before step 7 (steps 0..6 done)
            raise Stop

    with pytest.raises(Stop):
        simulate(req, progress=lambda done, total: progress.append(done), checkpoint=checkpoint)
    assert len(calls) == 8 and progress == [5]  # progress comes every 5 steps: once before the stop at step 7
    counted: list[int] = []
    assert simulate(req, checkpoint=lambda: counted.append(1)).summaries == simulate(req).summaries
    assert len(counted) == 501  # steps 0..500


def test_sub_batches_give_the_same_numbers_bit_for_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU backend advances a batch in sub-batches (``SUB_BATCH_BYTES`` of d x d matrices each): the same
    BLAS and LAPACK call per point, so sub-batches of 1, 2 or all points give identical numbers."""
    module = sys.modules["dynamics.simulate"]  # the module (the package exports its function simulate)
    points = [
        req(gamma_sigma2=g, gamma_w=w, seed=s, stopping=stop, steps=st, gd_update="sequential")
        for g, w, s, stop, st in [
            (-1.8, 1.9, 0, "paper", 60), (-1.2, 2.2, 1, "paper", 60), (-0.6, 2.0, 2, "none", 30),
            (-1.5, 1.8, 3, "paper", 45), (-2.0, 2.3, 4, "none", 60),
        ]
    ]  # fmt: skip
    runs = {}
    for points_per_sub_batch in (0, 1, 2):  # 0: the whole batch at once
        monkeypatch.setattr(module, "SUB_BATCH_BYTES", points_per_sub_batch * 12 * 12 * 8)
        runs[points_per_sub_batch] = simulate_batch(points)
    for a, b, c in zip(runs[0], runs[1], runs[2], strict=True):
        _same(a, b, 0.0)
        _same(a, c, 0.0)
    assert len({r.summaries["gd"].steps_run for r in runs[0]}) > 1  # points stopped at different steps


def test_sub_batch_size_rule() -> None:
    """max(1, SUB_BATCH_BYTES // (d^2 itemsize)) points on the CPU, at most the batch; the whole batch on a GPU."""
    from dynamics.backend import Backend, resolve_backend
    from dynamics.simulate import SUB_BATCH_BYTES, sub_batch_size

    cpu = resolve_backend("numpy")
    assert sub_batch_size(cpu, 200, 8, 36) == SUB_BATCH_BYTES // (200 * 200 * 8) < 36
    assert sub_batch_size(cpu, 200, 4, 36) == SUB_BATCH_BYTES // (200 * 200 * 4)
    assert sub_batch_size(cpu, 20, 8, 36) == 36
    assert sub_batch_size(cpu, 4000, 8, 36) == 1
    gpu = Backend(np, "cupy", "a GPU")  # only its name matters here
    assert sub_batch_size(gpu, 200, 8, 36) == 36


def test_live_rows_are_the_trajectory_given_in_pieces() -> None:
    """The ``rows`` callback's pieces of each (request, dynamics), concatenated, are a prefix of the result's
    trajectory (metric rows and spectra), exactly (the same floats, copied), given in more than one piece, each
    just before a progress call; a batch's pieces carry the index of their request."""
    points = [req(steps=60, spectrum_every=5, seed=0), req(steps=40, spectrum_every=5, seed=1, stopping="paper")]
    pieces: dict[tuple[int, str], list] = {}
    events: list[str] = []

    def rows(index: int, name: str, traj) -> None:  # type: ignore[no-untyped-def]
        pieces.setdefault((index, name), []).append(traj)
        events.append("rows")

    results = simulate_batch(points, rows=rows, progress=lambda done, total: events.append("progress"))
    assert events[0] == "rows" and events[-1] == "progress"
    assert {k[0] for k in pieces} == {0, 1} and {k[1] for k in pieces} == set(ALL)
    for (index, name), parts in pieces.items():
        assert len(parts) > 1
        full = results[index].trajectories[name]
        step = np.concatenate([p.step for p in parts])
        assert step.size > 0 and np.array_equal(step, full.step[: step.size])
        assert np.all(np.diff(step) > 0)
        for col, values in full.metrics.items():
            np.testing.assert_array_equal(np.concatenate([p.metrics[col] for p in parts]), values[: step.size])
        spec_steps = np.concatenate([p.spectrum_steps for p in parts])
        assert np.array_equal(spec_steps, full.spectrum_steps[: spec_steps.size])
        np.testing.assert_array_equal(np.concatenate([p.spectrum for p in parts]), full.spectrum[: spec_steps.size])


def test_live_rows_give_everything_recorded_by_each_progress_call() -> None:
    """``simulate(request, rows=...)``: at each progress call (step i), the pieces given so far are exactly the
    rows and the spectra recorded at steps <= i, none held back, not even a piece that has only spectra (the
    spectrum every 8 steps, the metrics every 10, progress every 6 steps: steps 30 to 36 add a spectrum only,
    24 to 30 metrics only);
    steps are int64, an empty spectrum piece included. The last call (after the loop) has no rows: the rest
    comes with the result."""
    request = req(steps=600, record_every=10, spectrum_every=8, stopping="none", dynamics=["gd", "self_consistent"])
    pieces: dict[str, list] = {"gd": [], "self_consistent": []}
    snapshots: list[tuple[int, dict[str, tuple[np.ndarray, np.ndarray]]]] = []

    def rows(index: int, name: str, traj) -> None:  # type: ignore[no-untyped-def]
        assert index == 0
        assert traj.step.dtype == np.int64 and traj.spectrum_steps.dtype == np.int64
        pieces[name].append(traj)

    def progress(done: int, total: int) -> None:
        snapshots.append((done, {
            name: (np.concatenate([p.step for p in parts]), np.concatenate([p.spectrum_steps for p in parts]))
            for name, parts in pieces.items()}))

    result = simulate(request, rows=rows, progress=progress)
    given = [p for parts in pieces.values() for p in parts]
    assert len(snapshots) > 50
    assert any(p.step.size == 0 < p.spectrum_steps.size for p in given)
    assert any(p.spectrum_steps.size == 0 < p.step.size for p in given)
    assert snapshots[-1][0] == 600  # the last call, after the loop: the rest comes with the result
    for i, sent in snapshots[:-1]:
        for name, (steps, spectrum_steps) in sent.items():
            full = result.trajectories[name]
            assert np.array_equal(steps, full.step[full.step <= i]), (name, i)
            assert np.array_equal(spectrum_steps, full.spectrum_steps[full.spectrum_steps <= i]), (name, i)


def test_blas_threads_change_a_run_only_by_round_off() -> None:
    """The per-run rule (workers/celery_app.py) may run a large run on more BLAS threads, which sum in another
    order: every recorded metric and distance agrees with the one-thread run to 1e-12 relative (round-off,
    ~1e-16 per operation, over 20 steps; measured: under 1e-15 after 4 steps, bench.large_run_threads), and
    the stop is the same."""
    from threadpoolctl import threadpool_limits

    req = SimulationRequest(d=100, rank=5, gamma_sigma2=-1.85, gamma_w=2.25, dynamics=["gd", "self_consistent"],
                            lr_constant=50, steps=20, spectrum_every=5, gd_update="sequential")  # fmt: skip
    with threadpool_limits(limits=1, user_api="blas"):
        one = simulate(req)
    with threadpool_limits(limits=2, user_api="blas"):
        two = simulate(req)
    for name in req.dynamics:
        a, b = one.trajectories[name], two.trajectories[name]
        assert a.step.tolist() == b.step.tolist()
        for col, values in a.metrics.items():
            np.testing.assert_allclose(b.metrics[col], values, rtol=1e-12, atol=0, err_msg=col)
        np.testing.assert_allclose(b.spectrum, a.spectrum, rtol=1e-12, atol=1e-12 * float(np.max(a.spectrum)))
        assert one.summaries[name].stop_reason == two.summaries[name].stop_reason
    assert one.comparison is not None and two.comparison is not None
    np.testing.assert_allclose(two.comparison.distance, one.comparison.distance, rtol=1e-12, atol=0)


def test_a_float32_run_computes_in_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """``dtype: float32``: every matrix product, decomposition and element-wise sum, difference and product the
    runner asks of ``xp`` (the four dynamics, their metrics, the GD/self-consistent distance) takes float32
    arrays and writes float32 outputs (the errors' sums alone accumulate in float64, by ``dtype=``); no array
    falls back to NumPy's float64 default (which would silently make the stated float32 mode a float64 one)."""
    import types as _types

    from dynamics.backend import Backend

    module = sys.modules["dynamics.simulate"]
    seen: set[str] = set()

    def watched(fn):  # type: ignore[no-untyped-def]
        def call(*args, **kw):  # type: ignore[no-untyped-def]
            for a in (*args, kw.get("out")):
                if isinstance(a, np.ndarray) and a.dtype.kind == "f":
                    seen.add(f"{fn.__name__}:{a.dtype}")
            return fn(*args, **kw)
        return call

    linalg = _types.SimpleNamespace(**{n: getattr(np.linalg, n) for n in dir(np.linalg) if not n.startswith("_")})
    for name in ("eigh", "svd", "eigvalsh", "norm", "qr", "solve"):
        setattr(linalg, name, watched(getattr(np.linalg, name)))

    class Watched(_types.ModuleType):
        def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
            return getattr(np, name)

    xp = Watched("watched_numpy")
    for name in ("matmul", "subtract", "add", "multiply"):
        setattr(xp, name, watched(getattr(np, name)))
    xp.linalg = linalg  # type: ignore[attr-defined]
    watched_numpy = Backend(xp, "numpy", "cpu")  # type: ignore[arg-type]
    monkeypatch.setattr(module, "resolve_backend", lambda name="auto": watched_numpy)
    points = [req(dtype="float32", steps=30, spectrum_every=5, seed=s, gd_update=u)
              for s, u in ((0, "simultaneous"), (1, "sequential"))]
    results = simulate_batch(points)
    assert all(r.comparison is not None for r in results)
    assert {s.split(":")[0] for s in seen} >= {"matmul", "eigh", "subtract", "add", "multiply"}
    assert {s.split(":")[1] for s in seen} == {"float32"}, sorted(seen)


def test_progress_comes_every_percent_of_the_steps_and_the_timings_add_up() -> None:
    """Progress every max(1, steps // 100) steps, then once at the end; ``init_s`` (the task and the initial
    weights) is part of ``total_s``."""
    for steps, every in ((50, 1), (400, 4)):
        calls: list[int] = []
        request = req(steps=steps, stopping="none", dynamics=["gd"])
        result = simulate(request, progress=lambda done, total: calls.append(done))
        assert calls == [*range(every, steps, every), steps], steps
        assert 0 < result.timings["init_s"] <= result.timings["total_s"]

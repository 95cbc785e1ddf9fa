"""Run requests: ``simulate`` (one) and ``simulate_batch`` (grid points advanced together as stacked arrays).

A batch shares the task (d, rank, noise_std, task_seed), dtype, backend, the dynamics list and the GD
update order; each point has its own initialisation, learning rate, threshold, stopping and step limit.
Every dynamics keeps only its active points in its stacked arrays: a point that stops (converged,
stopping rule, diverged, step limit) is recorded and dropped, so finished points cost nothing more.

Cost per step and point (d x d matrices, reduced width 2d): GD 12 d^3 flops (3 matmuls); self-consistent
and balanced one symmetric eigendecomposition of A^T A plus 6 matmuls; lazy O(d^2). Train and test errors
are computed every step (the stopping rules need them, O(d^2)); the singular values only at recorded steps
(GD, lazy: eigvalsh of A^T A, values only) or for free from the decomposition the step already made
(self-consistent, balanced). The summary's ``stable_rank_at_min`` and ``rank_at_min`` are exact: A is copied
whenever the test error reaches a new minimum, and that copy is decomposed once at the end. While a
sub-batch's points stay the same, its step reuses its arrays (A = W2 W1, G, the errors' squares, GD's
weights double-buffered): a new array each step is new memory whose first touch costs page faults.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynamics.backend import Backend, resolve_backend
from dynamics.initialisation import initial_weights
from dynamics.metrics import ignore_fp, singular_values, singular_values_from_gram, spectral_metrics
from dynamics.request import SimulationRequest, regime
from dynamics.result import METRIC_COLUMNS, Comparison, SimulationResult, Summary, Trajectory
from dynamics.sqrt_newton_schulz import self_consistent_step_ns
from dynamics.steps import balanced_step, gd_step, gram_eigh, lazy_step, self_consistent_step
from dynamics.stopping import CODES, stop_codes
from dynamics.task import Task, draw_task, error

#: progress(step_done, total_steps): called a bounded number of times (about every 1% of the steps).
ProgressCallback = Callable[[int, int], None]
#: rows(index, dynamics, trajectory): what the request at ``index`` recorded for ``dynamics`` since the last call
#: (its metric rows and spectra, as a Trajectory); called just before each progress call, for each (request,
#: dynamics) that recorded any, so as rarely as progress. A worker stores them as the run goes (live rows).
RowsCallback = Callable[[int, str, Trajectory], None]
#: checkpoint(): called before every step, so it must be cheap (e.g. reading a flag); it raises to stop the
#: run there (a cancelled run, workers/tasks.py)
Checkpoint = Callable[[], None]

_GRAM_DYNAMICS = ("self_consistent", "balanced")  # their step decomposes A^T A anyway

#: How the self-consistent step gets its two square roots, per backend: "eigh" (one eigendecomposition of
#: A^T A, reused by the metrics) or "newton_schulz" (matmuls only, dynamics/sqrt_newton_schulz.py; within
#: 1e-10 relative of eigh on every trajectory value, tests/dynamics/test_newton_schulz.py). The GPU benchmark
#: (bench/gpu_bench.py, part self_consistent_step and fig2_grid_newton_schulz) decides the "cupy" entry.
SELF_CONSISTENT_ROOTS: dict[str, str] = {"numpy": "eigh", "cupy": "eigh"}
ROOTS = ("eigh", "newton_schulz")


#: on the CPU, a sub-batch's d x d matrices take about this many bytes: the step's temporaries (a few such
#: stacks) then stay in cache between the passes over them (bench/sub_batch.py measures the crossover per d)
SUB_BATCH_BYTES = 2 * 1024**2


def sub_batch_size(be: Backend, d: int, dtype_bytes: int, n: int) -> int:
    """Points advanced together: all n on a GPU; on the CPU max(1, SUB_BATCH_BYTES // (d^2 itemsize)), at most n."""
    if be.name != "numpy" or SUB_BATCH_BYTES <= 0:
        return max(1, n)
    return max(1, min(n, SUB_BATCH_BYTES // (d * d * dtype_bytes)))


def learning_rate(request: SimulationRequest, task: Task) -> float:
    """eta = lr if given; else 1 / (c_lr sigma^2 w) when sigma^2 w > d, else 1 / (c_lr ||A*||_op)."""
    if request.lr is not None:
        return float(request.lr)
    if request.threshold > request.d:
        return 1.0 / (request.lr_constant * request.threshold)
    return 1.0 / (request.lr_constant * task.A_star_op_norm)


def batch_key(request: SimulationRequest) -> tuple[Any, ...]:
    """Requests with equal keys can run as one batch."""
    inner = request.inner_width if "gd" in request.dynamics else 0
    return (
        request.d,
        request.rank,
        request.noise_std,
        request.task_seed,
        request.dtype,
        request.backend,
        tuple(request.dynamics),
        request.gd_update,
        inner,
    )


def simulate(
    request: SimulationRequest, *, progress: ProgressCallback | None = None, checkpoint: Checkpoint | None = None,
    rows: RowsCallback | None = None,
) -> SimulationResult:
    """Run one request; equal to ``simulate_batch([request])[0]``."""
    return simulate_batch([request], progress=progress, checkpoint=checkpoint, rows=rows)[0]


def simulate_batch(
    requests: list[SimulationRequest], *, progress: ProgressCallback | None = None, roots: str | None = None,
    checkpoint: Checkpoint | None = None, rows: RowsCallback | None = None,
) -> list[SimulationResult]:
    """Run many requests, grouped by :func:`batch_key`, each group as one stacked batch.

    Results come back in the order of ``requests``; each equals what :func:`simulate` gives for it alone.
    ``progress(done, total)`` counts point-steps over all groups. ``roots``: the self-consistent step's
    square roots, "eigh" or "newton_schulz" (default: :data:`SELF_CONSISTENT_ROOTS` of the backend).
    ``rows(index, dynamics, trajectory)``: the rows recorded so far, as they go (:data:`RowsCallback`); the
    pieces of one (request, dynamics), concatenated, are a prefix of its result's trajectory.
    """
    if roots is not None and roots not in ROOTS:
        raise ValueError(f"roots must be one of {ROOTS}, got {roots!r}")
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(batch_key(r), []).append(i)
    total = sum(r.steps for r in requests)
    results: list[SimulationResult | None] = [None] * len(requests)
    offset = 0
    for indices in groups.values():
        group = [requests[i] for i in indices]
        group_total = sum(r.steps for r in group)

        def group_progress(done: int, _total: int, base: int = offset) -> None:
            if progress is not None:
                progress(base + done, total)

        group_rows = None
        if rows is not None:
            def group_rows(p: int, name: str, traj: Trajectory, where: list[int] = indices) -> None:
                rows(where[p], name, traj)

        for i, res in zip(indices, _run_batch(group, group_progress, roots, checkpoint, group_rows), strict=True):
            results[i] = res
        offset += group_total
    if progress is not None:
        progress(total, total)
    return [r for r in results if r is not None]


# ---- the batched runner ---------------------------------------------------------------------------------


@dataclass
class _Log:
    """Host-side record of one (point, dynamics)."""

    rec_step: list[int] = field(default_factory=list)
    rec: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in METRIC_COLUMNS})
    spec_step: list[int] = field(default_factory=list)
    spec: list[np.ndarray] = field(default_factory=list)
    steps_run: int = 0
    stop_reason: str = "max_steps"


@dataclass
class _State:
    """The active points of one dynamics: global indices and their stacked arrays."""

    name: str
    idx: np.ndarray  # global point index of each row
    arrays: dict[str, Any]  # "W1", "W2" (gd) or "A"; plus "eta", "c" (n, 1, 1)
    best_A: Any  # (B, d, d): A at each point's minimal test error so far
    best: np.ndarray  # (B,) minimal test error so far
    best_step: np.ndarray  # (B,) its step (-1: none yet)
    #: arrays reused from step to step while the points stay the same (a new array would be new memory, whose
    #: first touch costs page faults, for every product and temporary of every step)
    scratch: dict[str, Any] = field(default_factory=dict)

    def buffer(self, xp: Any, key: str, shape: tuple[int, ...], dtype: Any) -> Any:
        """A reusable array of this shape and dtype (contents undefined)."""
        buf = self.scratch.get(key)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self.scratch[key] = xp.empty(shape, dtype=dtype)
        return buf


@dataclass(frozen=True)
class _Schedule:
    """Per-point settings of a batch as host arrays (B,)."""

    max_steps: np.ndarray
    paper: np.ndarray  # paper stopping rules on
    record_every: np.ndarray
    spectrum_every: np.ndarray
    gd_update: str
    roots: str = "eigh"  # the self-consistent step's square roots: "eigh" or "newton_schulz"


def _run_batch(
    reqs: list[SimulationRequest], progress: ProgressCallback, roots: str | None = None,
    checkpoint: Checkpoint | None = None, rows: RowsCallback | None = None,
) -> list[SimulationResult]:
    t_start = time.perf_counter()
    r0 = reqs[0]
    be = resolve_backend(r0.backend)
    xp = be.xp
    dtype = xp.float64 if r0.dtype == "float64" else xp.float32
    d, k, B = r0.d, r0.rank, len(reqs)

    task = draw_task(d, r0.rank, r0.noise_std, r0.task_seed)
    Y = xp.asarray(task.Y, dtype=dtype)
    E = xp.asarray(task.E, dtype=dtype)
    lrs = np.array([learning_rate(r, task) for r in reqs])
    thresholds = np.array([r.threshold for r in reqs])
    sched = _Schedule(
        max_steps=np.array([r.steps for r in reqs]),
        paper=np.array([r.stopping == "paper" for r in reqs]),
        record_every=np.array([r.record_every for r in reqs]),
        spectrum_every=np.array([r.spectrum_every for r in reqs]),
        gd_update=r0.gd_update,
        roots=roots or SELF_CONSISTENT_ROOTS.get(be.name, "eigh"),
    )
    max_steps = sched.max_steps
    T = int(max_steps.max())

    weights = [initial_weights(d, r.width or 0, r.sigma2 or 0.0, r.seed, r.init) for r in reqs]
    W1 = xp.asarray(np.stack([w[0] for w in weights]), dtype=dtype)
    W2 = xp.asarray(np.stack([w[1] for w in weights]), dtype=dtype)
    del weights
    A0 = xp.matmul(W2, W1)
    eta = xp.asarray(lrs.reshape(B, 1, 1), dtype=dtype)
    c = xp.asarray(thresholds.reshape(B, 1, 1), dtype=dtype)
    t_init = time.perf_counter() - t_start

    # each dynamics' points in cache-sized sub-batches, advanced one after the other (sub-batch j of every
    # dynamics holds the same points); they share the records of the minima (indexed by the global point)
    size = sub_batch_size(be, d, dtype_bytes=8 if r0.dtype == "float64" else 4, n=B)
    parts = [np.arange(start, min(B, start + size)) for start in range(0, B, size)]
    states: dict[str, list[_State]] = {}
    for name in r0.dynamics:
        best_A, best, best_step = xp.zeros((B, d, d), dtype=dtype), np.full(B, np.inf), np.full(B, -1)
        states[name] = []
        for part in parts:
            sl = slice(int(part[0]), int(part[-1]) + 1)
            arrays = {"W1": W1[sl].copy(), "W2": W2[sl].copy()} if name == "gd" else {"A": A0[sl].copy()}
            arrays.update(eta=eta[sl], c=c[sl])
            states[name].append(_State(name, part, arrays, best_A, best, best_step))
    del A0, W1, W2
    names: list[str] = list(r0.dynamics)
    logs = {name: [_Log() for _ in range(B)] for name in names}
    train_hist: dict[str, np.ndarray] = {name: np.full((B, T + 1), np.nan) for name in names}
    test_hist: dict[str, np.ndarray] = {name: np.full((B, T + 1), np.nan) for name in names}
    compare = "gd" in states and "self_consistent" in states
    dist_hist = np.full((B, T + 1), np.nan) if compare else None

    progress_every = max(1, T // 100)
    sent = {name: np.zeros((B, 2), dtype=np.int64) for name in names}  # rows, spectra given to ``rows`` so far
    with ignore_fp(xp):
        for i in range(T + 1):
            if checkpoint is not None:
                checkpoint()
            for j in range(len(parts)):
                current: dict[str, tuple[np.ndarray, Any]] = {}
                for st in (subs[j] for subs in states.values()):
                    if st.idx.size:
                        current[st.name] = _advance(
                            be, st, i, Y, E, d, k, sched, logs[st.name], train_hist[st.name], test_hist[st.name]
                        )
                if dist_hist is not None and "gd" in current and "self_consistent" in current:
                    (idx_gd, A_gd), (idx_sc, A_sc) = current["gd"], current["self_consistent"]
                    common, p_gd, p_sc = np.intersect1d(idx_gd, idx_sc, assume_unique=True, return_indices=True)
                    if common.size == idx_gd.size == idx_sc.size:  # the same points, in the same order
                        diff = A_gd - A_sc
                        dist_hist[common, i] = be.to_host(error(xp, diff, d, out=diff))
                    elif common.size:
                        diff = A_gd[xp.asarray(p_gd)] - A_sc[xp.asarray(p_sc)]
                        dist = error(xp, diff, d, out=diff)
                        dist_hist[common, i] = be.to_host(dist)
            if not any(st.idx.size for subs in states.values() for st in subs):
                break
            if i % progress_every == 0 and i:
                if rows is not None:
                    _send_rows(rows, logs, sent, d)
                progress(int(np.minimum(max_steps, i).sum()), int(max_steps.sum()))

        firsts = {subs[0].name: subs[0] for subs in states.values()}  # the records of the minima are shared
        results = _results(be, reqs, firsts, logs, train_hist, test_hist, dist_hist, lrs, k)
    elapsed = time.perf_counter() - t_start
    for res in results:
        res.timings = {"init_s": t_init, "total_s": elapsed, "batch_size": float(B)}
    return results


def _send_rows(rows: RowsCallback, logs: dict[str, list[_Log]], sent: dict[str, np.ndarray], d: int) -> None:
    """Give ``rows`` what each (point, dynamics) recorded since the last time (``sent`` counts what was given)."""
    for name, point_logs in logs.items():
        for p, log in enumerate(point_logs):
            n_rec, n_spec = (int(x) for x in sent[name][p])
            if len(log.rec_step) == n_rec and len(log.spec_step) == n_spec:
                continue
            spec = log.spec[n_spec:]
            rows(p, name, Trajectory(
                step=np.array(log.rec_step[n_rec:], dtype=np.int64),
                metrics={c: np.array(v[n_rec:], dtype=np.float64) for c, v in log.rec.items()},
                spectrum_steps=np.array(log.spec_step[n_spec:], dtype=np.int64),
                spectrum=np.array(spec) if spec else np.zeros((0, d)),
            ))
            sent[name][p] = (len(log.rec_step), len(log.spec_step))


def _advance(
    be: Backend,
    st: _State,
    i: int,
    Y: Any,
    E: Any,
    d: int,
    k: int,
    sched: _Schedule,
    logs: list[_Log],
    train_hist: np.ndarray,
    test_hist: np.ndarray,
) -> tuple[np.ndarray, Any]:
    """Metrics of A_i for the active points of one dynamics, stop those that stop, step the rest.

    Returns (global indices, A_i) of the points active at step i, for the GD/self-consistent distance.
    """
    xp = be.xp
    arr = st.arrays
    if st.name == "gd":  # A = W2 W1 in the buffer of the last step's A (returned for the distance, used no more)
        W2 = arr["W2"]
        A = xp.matmul(W2, arr["W1"], out=st.buffer(xp, "A", (W2.shape[0], d, d), W2.dtype))
    else:
        A = arr["A"]
    G = xp.subtract(A, Y, out=st.buffer(xp, "G", A.shape, A.dtype))
    idx = st.idx
    current = (idx, A)
    squares = st.buffer(xp, "squares", A.shape, A.dtype)
    train = be.to_host(error(xp, G, d, out=squares))
    test = be.to_host(error(xp, xp.add(G, E, out=squares), d, out=squares))
    train_hist[idx, i] = train
    test_hist[idx, i] = test

    # new minima of the test error: keep a copy of A there
    with np.errstate(invalid="ignore"):
        improved = np.nonzero(test < st.best[idx])[0]
    if improved.size == idx.size and idx[-1] - idx[0] == idx.size - 1:  # every point, a contiguous block
        st.best_A[int(idx[0]) : int(idx[-1]) + 1] = A  # one copy (no gathered temporary)
    elif improved.size:
        st.best_A[xp.asarray(idx[improved])] = A[xp.asarray(improved)]
    if improved.size:
        st.best[idx[improved]] = test[improved]
        st.best_step[idx[improved]] = i

    # errors beyond this mean |A|^2 is near the float range: stop as diverged before A^T A overflows
    blowup = float(np.sqrt(np.finfo(A.dtype).max)) / (d * d)
    codes = stop_codes(train_hist, test_hist, i, sched.max_steps[idx], sched.paper[idx], blowup, rows=idx)
    stopping = codes != 0
    diverged = codes == CODES.index("diverged")
    if diverged.any():  # decompose zeros instead of NaN/inf rows (their metrics are NaN)
        A = xp.where(xp.asarray(diverged)[:, None, None], 0.0, A)
    record = (i % sched.record_every[idx] == 0) | stopping
    spec_every = sched.spectrum_every[idx]
    spectrum = ((spec_every > 0) & (i % np.maximum(spec_every, 1) == 0)) | stopping

    s2 = V = None
    newton_schulz = st.name == "self_consistent" and sched.roots == "newton_schulz"
    if st.name in _GRAM_DYNAMICS and not newton_schulz:  # also when every point stops: its metrics from eigh
        s2, V = gram_eigh(xp, A)
    rows = np.nonzero(record | spectrum)[0]  # only these points need singular values now
    if rows.size:
        rows_x = xp.asarray(rows)
        if s2 is not None:
            s = singular_values_from_gram(xp, s2[rows_x])
        else:
            s = singular_values(xp, A if rows.size == len(idx) else A[rows_x])
        metrics = spectral_metrics(xp, s, k, arr["c"][rows_x, 0, 0])
        host = {name: be.to_host(v) for name, v in metrics.items()}
        for v in host.values():
            v[diverged[rows]] = np.nan
        host["train_error"], host["test_error"] = train[rows], test[rows]
        s_host = be.to_host(s) if spectrum.any() else None
        for j, pos in enumerate(rows):
            log = logs[idx[pos]]
            if record[pos]:
                log.rec_step.append(i)
                for col in METRIC_COLUMNS:
                    log.rec[col].append(float(host[col][j]))
            if spectrum[pos] and s_host is not None:
                log.spec_step.append(i)
                log.spec.append(s_host[j].astype(np.float64))

    for pos in np.nonzero(stopping)[0]:
        log = logs[idx[pos]]
        log.steps_run = i
        log.stop_reason = CODES[codes[pos]] or "max_steps"

    if stopping.any():  # drop the stopped points from every array of this dynamics
        keep = np.nonzero(~stopping)[0]
        keep_x = xp.asarray(keep)
        st.idx = idx[keep]
        for name in list(arr):
            arr[name] = arr[name][keep_x]
        A, G = A[keep_x], G[keep_x]
        if s2 is not None and V is not None:
            s2, V = s2[keep_x], V[keep_x]
        if st.name == "gd":
            A = None
        if not keep.size:
            return current

    eta, c = arr["eta"], arr["c"]
    if st.name == "gd":  # the new weights in the buffers of the weights before last (G is used no more)
        W1, W2 = arr["W1"], arr["W2"]
        spare = (st.buffer(xp, "W1", W1.shape, W1.dtype), st.buffer(xp, "W2", W2.shape, W2.dtype))
        arr["W1"], arr["W2"] = gd_step(xp, W1, W2, G, eta, sched.gd_update, out=spare, overwrite_g=True)
        st.scratch["W1"], st.scratch["W2"] = W1, W2
    elif newton_schulz:
        arr["A"], _ = self_consistent_step_ns(xp, A, G, eta, c)
    elif st.name == "self_consistent":
        arr["A"] = self_consistent_step(xp, A, G, eta, c, s2, V)
    elif st.name == "balanced":
        arr["A"] = balanced_step(xp, A, G, eta, s2, V)
    else:
        arr["A"] = lazy_step(xp, A, G, eta, c)
    return current


def _results(
    be: Backend,
    reqs: list[SimulationRequest],
    states: dict[str, _State],
    logs: dict[str, list[_Log]],
    train_hist: dict[str, np.ndarray],
    test_hist: dict[str, np.ndarray],
    dist_hist: np.ndarray | None,
    lrs: np.ndarray,
    k: int,
) -> list[SimulationResult]:
    xp = be.xp
    at_min: dict[str, dict[str, np.ndarray]] = {}
    for name, st in states.items():
        s = singular_values(xp, st.best_A)
        m = spectral_metrics(xp, s, k, xp.zeros(s.shape[0], dtype=s.dtype))
        at_min[name] = {"stable_rank": be.to_host(m["stable_rank"]), "rank": be.to_host(m["rank"])}
        st.best_A = None

    out = []
    for p, req in enumerate(reqs):
        trajectories: dict[str, Trajectory] = {}
        summaries: dict[str, Summary] = {}
        for name in req.dynamics:
            log = logs[name][p]
            n = log.steps_run
            d = req.d
            trajectories[name] = Trajectory(
                step=np.array(log.rec_step, dtype=np.int64),
                metrics={c: np.array(v, dtype=np.float64) for c, v in log.rec.items()},
                spectrum_steps=np.array(log.spec_step, dtype=np.int64),
                spectrum=np.array(log.spec) if log.spec else np.zeros((0, d)),
            )
            best_step = int(states[name].best_step[p])
            found = best_step >= 0
            summaries[name] = Summary(
                min_test_error=float(states[name].best[p]) if found else math.nan,
                min_test_error_step=best_step,
                stable_rank_at_min=float(at_min[name]["stable_rank"][p]) if found else math.nan,
                rank_at_min=int(at_min[name]["rank"][p]) if found else 0,
                final_train_error=float(train_hist[name][p, n]),
                final_test_error=float(test_hist[name][p, n]),
                steps_run=n,
                stop_reason=log.stop_reason,
                diverged_step=n if log.stop_reason == "diverged" else None,
            )
        comparison = None
        if dist_hist is not None:
            row = dist_hist[p]
            steps = np.nonzero(~np.isnan(row))[0]
            dist = row[steps]
            finite = dist[np.isfinite(dist)]
            mx = float(finite.max()) if finite.size else math.nan
            comparison = Comparison(
                step=steps, distance=dist, max_distance=mx, log_max_distance=math.log(mx) if mx > 0 else -math.inf
            )
        assert req.gamma_sigma2 is not None and req.gamma_w is not None and req.width is not None
        out.append(
            SimulationResult(
                request=req.normalized(),
                lr=float(lrs[p]),
                threshold=req.threshold,
                regime=regime(req.gamma_sigma2, req.gamma_w, req.width, req.rank),
                trajectories=trajectories,
                summaries=summaries,
                comparison=comparison,
                backend=be.name,
                device=be.device,
            )
        )
    return out

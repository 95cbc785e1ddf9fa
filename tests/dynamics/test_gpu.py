"""CuPy against NumPy: every dynamics, batch and single, float64 and float32 (``pytest -m gpu``).

The tests marked ``gpu`` are deselected by default (pyproject's addopts ``-m 'not gpu'``); with
``-m gpu`` on a machine without CuPy or a CUDA device they skip with that reason (the only skip).
The last test is not marked: it runs the GPU benchmark's small NumPy mode so the script cannot rot.

Tolerances (measured on the CPU by perturbing every matmul and eigendecomposition with round-off-sized
noise, as a different summation order does -- cuBLAS/cuSOLVER sum in another order than OpenBLAS/LAPACK,
and CuPy's batched eigh is a Jacobi method, LAPACK's a divide and conquer):

- float64: relative 1e-9 on every trajectory value over 40-60 steps, with an absolute floor of 1e-9 times
  the error scale (the errors at step 0; the train error can fall to ~1e-8 of its start, where relative
  differences mean nothing) and 1e-9 * s_1 for the spectrum. The emulation gave at most 4e-13 on the
  spectrum (relative to s_1), 1e-14 on the other metrics and 9e-10 only on near-zero train errors, so
  1e-9 leaves three orders of magnitude for the GPU's different algorithms while catching any real bug
  (a wrong step is off by O(eta) ~ 1e-2 after one step). Integer metrics (rank, n_above_threshold),
  step counts, stop reasons and the step of the minimum agree exactly.
- float32: compared with the NumPy float64 run (the truth), relative 1e-3 (floor 1e-3 times the error
  scale; spectrum 3e-3 * s_1). NumPy float32 itself is off by up to 2e-5 (errors) and 1.5e-4 * s_1
  (spectrum) in the same emulation, so the bounds leave a factor 20-50. Integer metrics may flip where a
  singular value sits at a cut-off: at most 5% of the records may differ. Float32 runs use no stopping
  rule (a rule's decision can flip on float32 round-off and would change the step count).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dynamics import SimulationRequest, simulate, simulate_batch
from dynamics.backend import Backend, BackendUnavailable, resolve_backend
from dynamics.initialisation import initial_weights
from dynamics.result import SimulationResult

ALL = ["gd", "self_consistent", "lazy", "balanced"]
REPO = Path(__file__).resolve().parents[2]

F64 = dict(rtol=1e-9, spec=1e-9, int_mismatch=0.0)
F32 = dict(rtol=1e-3, spec=3e-3, int_mismatch=0.05)


@pytest.fixture(scope="module")
def gpu() -> Backend:
    try:
        be = resolve_backend("cupy")
    except BackendUnavailable as exc:
        pytest.skip(f"no CUDA GPU with CuPy here ({exc})")
    return be


def _req(backend: str, **kw) -> SimulationRequest:  # type: ignore[no-untyped-def]
    base = dict(
        d=20, rank=3, gamma_sigma2=-1.5, gamma_w=2.0, dynamics=ALL, steps=50, lr_constant=5,
        spectrum_every=10, backend=backend,
    )
    base.update(kw)
    return SimulationRequest.model_validate(base)


def _grid(backend: str, stopping: str | None = None, **kw) -> list[SimulationRequest]:  # type: ignore[no-untyped-def]
    """Five points of one batch: active and lazy, several widths and seeds, stopping rules mixed (unless
    ``stopping`` sets one for all)."""
    pts = [
        (-1.8, 2.0, 0, "none"),
        (-1.2, 2.2, 1, "paper"),
        (-0.6, 1.9, 2, "none"),
        (-2.0, 1.6, 3, "paper"),
        (-1.5, 2.5, 4, "none"),
    ]
    return [
        _req(backend, gamma_sigma2=g, gamma_w=w, seed=s, stopping=stopping or st, **kw)
        for g, w, s, st in pts
    ]


def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float, what: str) -> None:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    assert np.array_equal(np.isnan(a), np.isnan(b)), what
    ok = ~np.isnan(b)
    diff = np.abs(a[ok] - b[ok])
    bound = rtol * np.abs(b[ok]) + atol
    assert np.all(diff <= bound), (what, float(np.max(diff - bound)), float(np.max(diff)))


def _same_result(gpu_res: SimulationResult, cpu_res: SimulationResult, tol: dict, exact_steps: bool = True) -> None:
    rtol, spec, int_mismatch = tol["rtol"], tol["spec"], tol["int_mismatch"]
    assert gpu_res.backend == "cupy" and cpu_res.backend == "numpy"
    assert gpu_res.request["seed"] == cpu_res.request["seed"]
    for name, s_cpu in cpu_res.summaries.items():
        s_gpu = gpu_res.summaries[name]
        t_gpu, t_cpu = gpu_res.trajectories[name], cpu_res.trajectories[name]
        scale = max(float(t_cpu.metrics["train_error"][0]), float(t_cpu.metrics["test_error"][0]), 1e-300)
        if exact_steps:
            assert (s_gpu.steps_run, s_gpu.stop_reason) == (s_cpu.steps_run, s_cpu.stop_reason), name
            assert s_gpu.min_test_error_step == s_cpu.min_test_error_step, name
        assert np.array_equal(t_gpu.step, t_cpu.step), name
        for col, v_cpu in t_cpu.metrics.items():
            v_gpu = t_gpu.metrics[col]
            if col in ("rank", "n_above_threshold"):
                differ = np.count_nonzero(v_gpu != v_cpu)
                assert differ <= int_mismatch * v_cpu.size, (name, col, differ)
            elif col in ("train_error", "test_error"):
                _close(v_gpu, v_cpu, rtol, rtol * scale, f"{name}.{col}")
            else:
                _close(v_gpu, v_cpu, rtol, 0.0, f"{name}.{col}")
        assert np.array_equal(t_gpu.spectrum_steps, t_cpu.spectrum_steps), name
        if t_cpu.spectrum.size:
            s1 = t_cpu.spectrum[:, :1]
            _close(t_gpu.spectrum / s1, t_cpu.spectrum / s1, 0.0, spec, f"{name}.spectrum")
        for col in ("min_test_error", "final_train_error", "final_test_error"):
            _close(np.array([getattr(s_gpu, col)]), np.array([getattr(s_cpu, col)]), rtol, rtol * scale, col)
        _close(np.array([s_gpu.stable_rank_at_min]), np.array([s_cpu.stable_rank_at_min]), rtol, 0.0, "sr_at_min")
    if cpu_res.comparison is not None:
        assert gpu_res.comparison is not None
        assert np.array_equal(gpu_res.comparison.step, cpu_res.comparison.step)
        mx = cpu_res.comparison.max_distance
        _close(gpu_res.comparison.distance, cpu_res.comparison.distance, rtol, rtol * mx, "distance")
        _close(np.array([gpu_res.comparison.max_distance]), np.array([mx]), rtol, 0.0, "max_distance")


# ---- the backend and the start ---------------------------------------------------------------------


@pytest.mark.gpu
def test_backend_is_cupy_and_names_the_device(gpu: Backend) -> None:
    assert gpu.name == "cupy" and gpu.xp.__name__ == "cupy"
    assert gpu.device and gpu.device != "cpu"
    res = simulate(_req("cupy", dynamics=["gd"], steps=3))
    assert res.backend == "cupy" and res.device == gpu.device
    print(f"GPU device: {gpu.device}; CuPy {gpu.xp.__version__}; CUDA runtime {gpu.xp.cuda.runtime.runtimeGetVersion()}")


@pytest.mark.gpu
def test_same_seeds_give_the_same_start(gpu: Backend) -> None:
    """Weights are drawn on the host: the GPU gets the very same numbers; A0 = W2 W1 agrees to round-off."""
    cp = gpu.xp
    for d, w, init in [(20, 400, "wishart"), (20, 30, "dense"), (20, 100, "dense")]:
        W1, W2 = initial_weights(d, w, 20**-1.5, 7, init)
        W1_gpu, W2_gpu = cp.asarray(W1), cp.asarray(W2)
        assert np.array_equal(gpu.to_host(W1_gpu), W1) and np.array_equal(gpu.to_host(W2_gpu), W2)
        A_cpu, A_gpu = W2 @ W1, gpu.to_host(W2_gpu @ W1_gpu)
        assert np.linalg.norm(A_gpu - A_cpu) <= 1e-13 * np.linalg.norm(A_cpu)
    r_gpu, r_cpu = simulate(_req("cupy", steps=0)), simulate(_req("numpy", steps=0))
    for name in ALL:
        _close(r_gpu.trajectories[name].metrics["test_error"], r_cpu.trajectories[name].metrics["test_error"], 1e-13, 0.0, name)


# ---- every dynamics, float64 -----------------------------------------------------------------------

CONFIGS: dict[str, dict[str, Any]] = {
    "gd_simultaneous": dict(dynamics=["gd"], gd_update="simultaneous"),
    "gd_sequential": dict(dynamics=["gd"], gd_update="sequential"),
    "self_consistent": dict(dynamics=["self_consistent"]),
    "lazy": dict(dynamics=["lazy"]),
    "balanced": dict(dynamics=["balanced"]),
    "all_four_with_distance": dict(dynamics=ALL, gd_update="sequential"),
}


@pytest.mark.gpu
@pytest.mark.parametrize("config", list(CONFIGS))
def test_single_run_float64(gpu: Backend, config: str) -> None:
    kw = CONFIGS[config]
    _same_result(simulate(_req("cupy", stopping="paper", **kw)), simulate(_req("numpy", stopping="paper", **kw)), F64)


@pytest.mark.gpu
@pytest.mark.parametrize("config", list(CONFIGS))
def test_batch_float64(gpu: Backend, config: str) -> None:
    kw = CONFIGS[config]
    res_gpu, res_cpu = simulate_batch(_grid("cupy", **kw)), simulate_batch(_grid("numpy", **kw))
    for a, b in zip(res_gpu, res_cpu, strict=True):
        _same_result(a, b, F64)
    # the batch on the GPU equals each point alone on the GPU (per-point stopping and dropping work there)
    alone = simulate(_grid("cupy", **kw)[1])
    _same_result(alone, res_cpu[1], F64)
    assert len({r.summaries[kw["dynamics"][0]].steps_run for r in res_gpu}) > 1 or config == "lazy"


@pytest.mark.gpu
def test_dense_gd_below_2d_width(gpu: Backend) -> None:
    """w < 2d: GD runs on the dense (w-wide) weights, on the GPU too."""
    kw = dict(dynamics=["gd", "self_consistent"], width=25, gamma_w=None, stopping="paper")
    _same_result(simulate(_req("cupy", **kw)), simulate(_req("numpy", **kw)), F64)


@pytest.mark.gpu
def test_divergence_on_gpu(gpu: Backend) -> None:
    """A learning rate far too large: every dynamics stops as diverged at the same step, no exception."""
    kw = dict(lr=5.0, steps=60)
    r_gpu, r_cpu = simulate(_req("cupy", **kw)), simulate(_req("numpy", **kw))
    for name in ALL:
        assert r_gpu.summaries[name].stop_reason == r_cpu.summaries[name].stop_reason
        assert r_gpu.summaries[name].steps_run == r_cpu.summaries[name].steps_run
    assert r_gpu.diverged


# ---- float32 ---------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("config", ["gd_simultaneous", "gd_sequential", "all_four_with_distance"])
def test_float32_against_numpy_float64(gpu: Backend, config: str) -> None:
    kw = dict(CONFIGS[config], stopping="none")
    res32 = simulate_batch(_grid("cupy", dtype="float32", **kw))
    res64 = simulate_batch(_grid("numpy", dtype="float64", **kw))
    for a, b in zip(res32, res64, strict=True):
        _same_result(a, b, F32)
    single32 = simulate(_req("cupy", dtype="float32", **kw))
    _same_result(single32, simulate(_req("numpy", **kw)), F32)


# ---- the matmul-only square root on the GPU ---------------------------------------------------------


@pytest.mark.gpu
def test_newton_schulz_direction_on_gpu(gpu: Backend) -> None:
    from dynamics.sqrt_newton_schulz import self_consistent_direction_ns
    from dynamics.steps import gram_eigh, self_consistent_direction
    from dynamics.task import draw_task

    cp = gpu.xp
    d = 64
    rng = np.random.default_rng(5)
    Y = draw_task(d, 3, 1.0, 0).Y
    A = np.stack([rng.standard_normal((d, d)) * s for s in (1e-3, 1.0, 0.3, 2.0)])
    A[-1] += 0.9 * Y
    G = A - Y
    c = np.array([0.05, 1.0, 30.0, 3.0]).reshape(-1, 1, 1)
    s2, V = gram_eigh(np, A)
    ref = self_consistent_direction(np, A, G, c, s2, V)
    D, info = self_consistent_direction_ns(cp, cp.asarray(A), cp.asarray(G), cp.asarray(c))
    assert info.converged
    D = gpu.to_host(D)
    for i in range(A.shape[0]):
        assert np.linalg.norm(D[i] - ref[i]) <= 1e-10 * np.linalg.norm(ref[i])


# ---- the benchmark script, on NumPy (not marked: runs in CI) -----------------------------------------


def test_gpu_bench_small_numpy_mode_runs(tmp_path: Path) -> None:
    """``python -m bench.gpu_bench --small --backend numpy`` runs every part and writes its JSON and text."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gpu_bench", "--small", "--backend", "numpy", "--out", str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads((tmp_path / "gpu_bench.json").read_text())
    assert data["backend"] == "numpy" and data["small"] is True
    for part in ("fig2_grid", "fig2_grid_newton_schulz", "fig1", "dense_reference", "gd_flops", "self_consistent_step", "decision"):
        assert part in data["parts"], part
        assert "error" not in data["parts"][part], data["parts"][part]
    assert data["parts"]["dense_reference"]["speedup"] > 0
    assert math.isfinite(data["parts"]["gd_flops"]["achieved_tflops"])
    ns = data["parts"]["self_consistent_step"]
    assert ns["newton_schulz_max_rel_diff_vs_eigh"] < 1e-10
    assert data["parts"]["fig2_grid_newton_schulz"]["max_rel_diff_min_test_error_vs_eigh"] < 1e-10
    decision = data["parts"]["decision"]
    assert decision["winner"] in ("eigh", "newton_schulz") and decision["basis"] == "Figure 2 wall time"
    assert "DECISION" in (tmp_path / "gpu_bench.txt").read_text()
    assert (tmp_path / "gpu_bench.txt").read_text().strip()

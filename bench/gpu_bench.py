"""GPU benchmark (issue 7): one run, wall times and ratios, on CuPy (or NumPy with --small for a dry run).

    python -m bench.gpu_bench --out DIR [--backend auto|cupy|numpy] [--small] [--budget-s 270]

Parts (run in the order env, gd_flops, dense_reference, self_consistent_step, fig1, fig2_gd_only, fig2,
fig2_newton_schulz, projection, decision; each bounded in time; results are written after every part, so a
run cut short still leaves what it measured):

  env          device, versions, a large DGEMM (the practical float64 ceiling)
  gd_flops     (d) achieved FLOP/s of the batched reduced GD step: 900 points x 20 steps at d = 200,
               12 d^3 flops per point and step (A = W2 W1, W2^T G, G W1^T on 2d-wide weights), against
               the H200's FP64 tensor-core peak (67 TFLOP/s, datasheet; cuBLAS DGEMM runs on the FP64
               tensor cores on Hopper) and against the measured DGEMM rate; float32 for information
  self_consistent_step
               (e) one self-consistent direction for 900 points at d = 200: batched eigh (cuSOLVER's
               batched Jacobi, what CuPy does for stacked input) + the one-decomposition formula, against
               the matmul-only coupled Newton-Schulz (dynamics/sqrt_newton_schulz.py), with the
               agreement of the two; also eigvalsh alone, torch.linalg.eigh on the same batch (if torch
               sees the GPU) and a per-matrix loop of 2-D eigh (extrapolated)
  fig1         (b) Figure 1: d = 500, k = 5, gamma_sigma2 = -1.85, gamma_w = 2.25, lr_constant 5, 100
               steps, GD + self-consistent; as the figure needs (metrics and spectrum every step) and
               errors only. Goal < 5 s
  fig2         (a) Figure 2: d = 200, 30 x 30 grid, GD + self-consistent, lr_constant 50, paper stopping,
               <= 750 steps, record_every 25, spectrum_every 0, one simulate_batch call (roots by eigh).
               Goal < 60 s. Per-point summaries (the four panels' data) are saved
  fig2_newton_schulz
               the same with simulate_batch(..., roots="newton_schulz"), and its summaries against fig2's
  dense_reference
               (c) the paper's dense GD on full W1, W2 (d = 200, width floor(200^2.8) ~ 2.8M, float64,
               4.4 GB each, drawn on the device) steps/s against lindyn's reduced GD in the same run
               (raw step, and simulate() end to end)
  fig2_gd_only the Figure 2 grid with GD alone (run before fig2: it also gives the point-steps count)
  projection   Figure 2's time if the self-consistent step used Newton-Schulz (from the parts above)
  decision     eigh against Newton-Schulz in one table (direction; Figure 2 measured or extrapolated) and
               the one-line change in dynamics/simulate.py (SELF_CONSISTENT_ROOTS) if Newton-Schulz wins

A part that would run past its budget is stopped (simulate runs through their progress callback) and
reported with the fraction done and an extrapolated time. --small shrinks every size (d = 20, 4 x 4 grid)
so the whole script runs in seconds on NumPy: the CPU dry run and the CI test use it.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dynamics import SimulationRequest, simulate, simulate_batch
from dynamics.backend import Backend, resolve_backend
from dynamics.initialisation import initial_weights
from dynamics.sqrt_newton_schulz import iterations_needed, self_consistent_direction_ns
from dynamics.steps import gd_step, gram_eigh, self_consistent_direction
from dynamics.task import draw_task
from tests.reference import dense_gd_step

H200_FP64_TENSOR_TFLOPS = 67.0  # H200 SXM datasheet, FP64 tensor core (what DGEMM uses on Hopper)
H200_FP64_TFLOPS = 34.0  # H200 SXM datasheet, FP64 non-tensor
H200_FP32_TFLOPS = 67.0  # H200 SXM datasheet, FP32 non-tensor

T_START = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T_START:7.1f}s] {msg}", flush=True)


class BudgetExceeded(Exception):
    def __init__(self, done: int, total: int, elapsed: float) -> None:
        super().__init__(f"budget exceeded after {elapsed:.1f}s at {done}/{total}")
        self.done, self.total, self.elapsed = done, total, elapsed


class Bench:
    def __init__(self, be: Backend, small: bool, out: Path, budget_s: float) -> None:
        self.be, self.xp, self.small, self.out = be, be.xp, small, out
        self.deadline = T_START + budget_s
        self.data: dict[str, Any] = {
            "backend": be.name,
            "device": be.device,
            "small": small,
            "budget_s": budget_s,
            "parts": {},
        }
        self.lines: list[str] = []

    # ---- helpers -------------------------------------------------------------------------------
    def sync(self) -> None:
        if self.be.name == "cupy":
            self.xp.cuda.Device().synchronize()

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def timed(
        self, fn: Callable[[], Any], repeats: int = 5, warmup: int = 1, max_s: float = 20.0, slow_s: float = 3.0
    ) -> dict[str, Any]:
        """Median wall time of fn() (device synchronised before and after each call) after ``warmup`` calls;
        fewer repeats when calls are slow (at most ~max_s in total); when the first call alone takes more
        than ``slow_s``, that call is the measurement (``single_call``)."""
        t_first = None
        for i in range(warmup):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            if i == 0:
                t_first = time.perf_counter() - t0
                if t_first > slow_s:
                    return {"median_s": t_first, "times_s": [t_first], "first_call_s": t_first, "single_call": True}
        times: list[float] = []
        for _ in range(repeats):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append(time.perf_counter() - t0)
            if sum(times) > max_s or self.left() < 5:
                break
        return {"median_s": statistics.median(times), "times_s": times, "first_call_s": t_first}

    def note(self, line: str) -> None:
        self.lines.append(line)
        log(line)

    def save(self) -> None:
        self.data["elapsed_s"] = time.perf_counter() - T_START
        (self.out / "gpu_bench.json").write_text(json.dumps(self.data, indent=1, default=_jsonable))
        (self.out / "gpu_bench.txt").write_text("\n".join(self.lines) + "\n")

    def free(self) -> None:
        if self.be.name == "cupy":
            self.xp.get_default_memory_pool().free_all_blocks()

    def run_part(self, name: str, fn: Callable[[], dict[str, Any]], min_left_s: float = 10.0) -> None:
        if self.left() < min_left_s:
            self.data["parts"][name] = {"skipped": f"total budget left {self.left():.0f}s < {min_left_s:.0f}s"}
            self.note(f"== {name}: SKIPPED (budget)")
            self.save()
            return
        log(f"== {name} ...")
        t0 = time.perf_counter()
        try:
            res = fn()
        except Exception as exc:  # keep going: the other parts still run
            res = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
            self.note(f"== {name}: ERROR {type(exc).__name__}: {exc}")
        res["part_wall_s"] = time.perf_counter() - t0
        self.data["parts"][name] = res
        self.free()
        self.save()

    def budget_progress(self, budget_s: float) -> tuple[Callable[[int, int], None], dict[str, float]]:
        """A progress callback for simulate/simulate_batch that raises once ``budget_s`` is spent."""
        state = {"t0": time.perf_counter(), "last": 0.0}
        stop_at = min(state["t0"] + budget_s, self.deadline - 5)

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if now - state["last"] > 10:
                state["last"] = now
                log(f"   progress {done}/{total} ({100 * done / max(total, 1):.0f}%), {now - state['t0']:.1f}s")
            if now > stop_at and done < total:
                raise BudgetExceeded(done, total, now - state["t0"])

        return progress, state

    # ---- parts ---------------------------------------------------------------------------------
    def env(self) -> dict[str, Any]:
        xp = self.xp
        info: dict[str, Any] = {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "platform": platform.platform(),
        }
        if self.be.name == "cupy":
            cp = xp
            dev = cp.cuda.Device()
            props = cp.cuda.runtime.getDeviceProperties(dev.id)
            info.update(
                cupy=cp.__version__,
                cuda_runtime=cp.cuda.runtime.runtimeGetVersion(),
                cuda_driver=cp.cuda.runtime.driverGetVersion(),
                multiprocessors=props.get("multiProcessorCount"),
                total_memory_gib=props.get("totalGlobalMem", 0) / 2**30,
                cc=f"{props.get('major')}.{props.get('minor')}",
            )
        n = 512 if self.small else (8192 if self.be.name == "cupy" else 2048)
        a = xp.asarray(np.random.default_rng(0).standard_normal((n, n)))
        b = xp.asarray(np.random.default_rng(1).standard_normal((n, n)))
        t = self.timed(lambda: xp.matmul(a, b), repeats=5, warmup=2)
        info["dgemm_n"] = n
        info["dgemm_tflops"] = 2 * n**3 / t["median_s"] / 1e12
        a32, b32 = a.astype(xp.float32), b.astype(xp.float32)
        t32 = self.timed(lambda: xp.matmul(a32, b32), repeats=5, warmup=2)
        info["sgemm_tflops"] = 2 * n**3 / t32["median_s"] / 1e12
        self.note(
            f"env: {self.be.name} on {self.be.device}; measured DGEMM {info['dgemm_tflops']:.3f} TFLOP/s, "
            f"SGEMM {info['sgemm_tflops']:.3f} TFLOP/s (n = {n})"
        )
        self.data["dgemm_tflops"] = info["dgemm_tflops"]
        return info

    def gd_flops(self) -> dict[str, Any]:
        xp = self.xp
        d, B, steps = (20, 16, 20) if self.small else (200, 900, 20)
        task = draw_task(d, 5, 1.0, 0)
        w = int(d**2.25)
        sig2 = d**-1.5
        W = [initial_weights(d, w, sig2, s, "wishart") for s in range(min(B, 8))]
        W1h = np.stack([W[i % len(W)][0] for i in range(B)])
        W2h = np.stack([W[i % len(W)][1] for i in range(B)])
        out: dict[str, Any] = {"d": d, "batch": B, "steps": steps, "flops_per_point_step": 12 * d**3}
        for dt in ("float64", "float32"):
            dtype = getattr(xp, dt)
            Y = xp.asarray(task.Y, dtype=dtype)
            eta = xp.full((B, 1, 1), 1e-3, dtype=dtype)
            W1_0, W2_0 = xp.asarray(W1h, dtype=dtype), xp.asarray(W2h, dtype=dtype)

            def run() -> None:
                W1, W2 = W1_0, W2_0
                for _ in range(steps):
                    G = xp.matmul(W2, W1) - Y
                    W1, W2 = gd_step(xp, W1, W2, G, eta, "simultaneous")

            t = self.timed(run, repeats=5, warmup=1)
            flops = 12 * d**3 * B * steps
            tf = flops / t["median_s"] / 1e12
            out[dt] = {"median_s": t["median_s"], "achieved_tflops": tf, "point_steps_per_s": B * steps / t["median_s"]}
            if dt == "float64":
                out["achieved_tflops"] = tf
        peak = H200_FP64_TENSOR_TFLOPS if self.be.name == "cupy" else float("nan")
        out["peak_fp64_tensor_tflops"] = H200_FP64_TENSOR_TFLOPS
        out["peak_fp64_tflops"] = H200_FP64_TFLOPS
        out["fraction_of_fp64_tensor_peak"] = out["achieved_tflops"] / peak if self.be.name == "cupy" else None
        out["fraction_of_measured_dgemm"] = out["achieved_tflops"] / self.data.get("dgemm_tflops", float("nan"))
        self.note(
            f"(d) batched GD step, {B} points x {steps} steps at d = {d}: float64 {out['achieved_tflops']:.2f} TFLOP/s"
            f" ({out['float64']['median_s'] * 1e3:.1f} ms; "
            + (f"{100 * out['fraction_of_fp64_tensor_peak']:.0f}% of the 67 TFLOP/s FP64 tensor-core peak, " if self.be.name == "cupy" else "")
            + f"{100 * out['fraction_of_measured_dgemm']:.0f}% of the measured DGEMM); "
            f"float32 {out['float32']['achieved_tflops']:.2f} TFLOP/s"
        )
        return out

    def self_consistent_step(self) -> dict[str, Any]:
        xp, be = self.xp, self.be
        d, B = (20, 16) if self.small else (200, 900)
        task = draw_task(d, 5, 1.0, 0)
        gs = np.linspace(-2.2, -0.8, 30)
        gw = np.linspace(1.75, 2.8, 30)
        grid = [(a, b) for a in gs for b in gw][:: max(1, 900 // B)][:B]
        rng = np.random.default_rng(0)
        A_h = np.empty((B, d, d))
        c_h = np.empty((B, 1, 1))
        for i, (a, b) in enumerate(grid):
            s2, w = d**a, math.floor(d**b)
            W1, W2 = initial_weights(d, w, s2, i, "wishart")
            frac = rng.uniform(0.0, 1.0)  # between the start and the fit: a realistic spread of spectra
            A_h[i] = (1 - frac) * (W2 @ W1) + frac * task.Y
            c_h[i] = s2 * w
        A = xp.asarray(A_h)
        G = A - xp.asarray(task.Y)
        c = xp.asarray(c_h)
        out: dict[str, Any] = {"d": d, "batch": B}
        self.data["parts"]["self_consistent_step"] = out  # saved as it goes (a run cut short keeps it)
        last: dict[str, Any] = {}

        def eigh_path(n: int) -> Callable[[], None]:
            def run() -> None:
                s2, V = gram_eigh(xp, A[:n])
                last["ref"] = self_consistent_direction(xp, A[:n], G[:n], c[:n], s2, V)

            return run

        gram = xp.matmul(xp.swapaxes(A, -1, -2), A)
        # probe on a slice first: a cuSOLVER batched Jacobi call cannot be interrupted, so never start a
        # full-batch one predicted to take more than ~15 s
        n_probe = min(B, 64)
        t = self.timed(lambda: xp.linalg.eigh(gram[:n_probe]), repeats=2, warmup=1, max_s=15)
        out["eigh_probe"] = {"batch": n_probe, **t}
        predicted = t["median_s"] * B / n_probe
        n_eigh = B if predicted <= 15.0 else n_probe
        scale = B / n_eigh
        out["eigh_timed_batch"] = n_eigh
        self.note(
            f"(e) batched eigh probe ({n_probe}, {d}, {d}): {t['median_s'] * 1e3:.1f} ms -> predicted {predicted * 1e3:.0f} ms "
            f"for {B}" + ("" if n_eigh == B else f"; TOO SLOW: the eigh timings below are for {n_eigh} matrices, scaled x{scale:.1f}")
        )
        t = self.timed(lambda: xp.linalg.eigh(gram[:n_eigh]), repeats=3, warmup=1, max_s=15)
        out["eigh_batched_s"] = {**t, "median_s": t["median_s"] * scale}
        self.note(f"    batched eigh of ({B}, {d}, {d}) float64: {t['median_s'] * scale * 1e3:.1f} ms")
        self.save()
        t = self.timed(lambda: xp.linalg.eigvalsh(gram[:n_eigh]), repeats=3, warmup=1, max_s=15)
        out["eigvalsh_batched_s"] = {**t, "median_s": t["median_s"] * scale}
        self.note(f"    batched eigvalsh (values only): {t['median_s'] * scale * 1e3:.1f} ms")
        t = self.timed(eigh_path(n_eigh), repeats=3, warmup=1, max_s=15)
        out["eigh_direction_s"] = {**t, "median_s": t["median_s"] * scale}
        self.note(f"    self-consistent direction via eigh (one decomposition + 5 matmuls): {t['median_s'] * scale * 1e3:.1f} ms")
        self.save()

        ref = last["ref"]
        D, info = self_consistent_direction_ns(xp, A, G, c)
        D = D[:n_eigh]
        ratios = be.to_host(c * c).reshape(-1) / np.maximum(
            be.to_host(xp.sum(A * A, axis=(-2, -1))).reshape(-1) + be.to_host(c * c).reshape(-1), 1e-300
        )
        counts = [iterations_needed(float(r))[0] for r in ratios]
        rel = be.to_host(
            xp.sqrt(xp.sum((D - ref) ** 2, axis=(-2, -1)) / xp.sum(ref * ref, axis=(-2, -1)))
        )
        out["newton_schulz_iterations_max"] = info.iterations
        out["newton_schulz_iterations_mean_approx"] = float(np.mean(counts))
        out["newton_schulz_converged"] = info.converged
        out["newton_schulz_max_rel_diff_vs_eigh"] = float(np.max(rel))
        t = self.timed(lambda: self_consistent_direction_ns(xp, A, G, c), repeats=3, warmup=1, max_s=30)
        out["newton_schulz_direction_s"] = t
        self.note(
            f"    Newton-Schulz direction (per-point iteration counts, max {info.iterations}, mean ~{np.mean(counts):.1f}): "
            f"{t['median_s'] * 1e3:.1f} ms; max rel diff vs eigh {np.max(rel):.1e}"
        )
        self.save()
        t = self.timed(lambda: self_consistent_direction_ns(xp, A, G, c, iterations=info.iterations), repeats=3, warmup=1, max_s=30)
        out["newton_schulz_fixed_iterations_s"] = t
        self.note(f"    Newton-Schulz, all points {info.iterations} iterations (no host transfer): {t['median_s'] * 1e3:.1f} ms")
        out["speedup_ns_over_eigh"] = out["eigh_direction_s"]["median_s"] / out["newton_schulz_direction_s"]["median_s"]
        self.note(f"    => Newton-Schulz / eigh speed-up for the direction: {out['speedup_ns_over_eigh']:.2f}x")
        A32, G32, c32 = A.astype(xp.float32), G.astype(xp.float32), c.astype(xp.float32)
        t = self.timed(lambda: self_consistent_direction_ns(xp, A32, G32, c32, tol=1e-6), repeats=3, warmup=1, max_s=20)
        out["newton_schulz_float32_s"] = t
        self.note(f"    Newton-Schulz float32 (tol 1e-6): {t['median_s'] * 1e3:.1f} ms")
        self.save()
        # per-matrix 2-D eigh loop (cuSOLVER syevd), extrapolated to the batch
        n_loop = min(B, 32)
        t = self.timed(lambda: [xp.linalg.eigh(gram[i]) for i in range(n_loop)], repeats=3, warmup=1, max_s=20)
        out["eigh_loop_2d_per_matrix_s"] = t["median_s"] / n_loop
        out["eigh_loop_2d_extrapolated_batch_s"] = t["median_s"] / n_loop * B
        self.note(f"    per-matrix 2-D eigh loop: {t['median_s'] / n_loop * 1e3:.2f} ms/matrix -> {t['median_s'] / n_loop * B * 1e3:.0f} ms for {B}")

        if be.name == "cupy":
            try:
                import torch

                if torch.cuda.is_available():
                    tg = torch.from_dlpack(gram)
                    out["torch_version"] = torch.__version__
                    tp = self.timed(lambda: torch.linalg.eigh(tg[:n_probe]), repeats=2, warmup=1, max_s=10)
                    n_t = B if tp["median_s"] * B / n_probe <= 10.0 else n_probe
                    t = self.timed(lambda: torch.linalg.eigh(tg[:n_t]), repeats=3, warmup=1, max_s=15)
                    out["torch_eigh_batched_s"] = {**t, "median_s": t["median_s"] * B / n_t, "timed_batch": n_t}
                    self.note(
                        f"    torch.linalg.eigh on the same batch (torch {torch.__version__}): {t['median_s'] * B / n_t * 1e3:.1f} ms"
                        + ("" if n_t == B else f" (timed on {n_t}, scaled)")
                    )
            except Exception as exc:  # torch absent or not on this GPU: information only
                out["torch_eigh_batched_s"] = f"unavailable: {type(exc).__name__}: {exc}"
        return out

    def fig1(self) -> dict[str, Any]:
        d = 30 if self.small else 500
        base = dict(
            d=d, rank=5, gamma_sigma2=-1.85, gamma_w=2.25, lr_constant=5, steps=100,
            dynamics=["gd", "self_consistent"], backend=self.be.name, stopping="none",
        )
        simulate(SimulationRequest.model_validate({**base, "steps": 2}))  # warm-up: kernels, handles
        out: dict[str, Any] = {"d": d, "steps": 100, "goal_s": 5.0}
        # what one step's decomposition costs at this d: the runner passes (1, d, d) (batched Jacobi on
        # CuPy); a 2-D call goes to cuSOLVER's syevd
        xp = self.xp
        M = xp.asarray(draw_task(d, 5, 1.0, 0).Y)
        M = xp.matmul(M.T, M)
        t_b = self.timed(lambda: xp.linalg.eigh(M[None]), repeats=3, warmup=1, max_s=5)
        t_2 = self.timed(lambda: xp.linalg.eigh(M), repeats=3, warmup=1, max_s=5)
        out["eigh_batched_1_s"], out["eigh_2d_s"] = t_b["median_s"], t_2["median_s"]
        self.note(f"(b) eigh of one {d}x{d}: as a batch of 1 {t_b['median_s'] * 1e3:.1f} ms, as a 2-D matrix {t_2['median_s'] * 1e3:.1f} ms")
        for label, extra in (("as_figure", dict(record_every=1, spectrum_every=1)), ("errors_only", dict(record_every=1, spectrum_every=0))):
            progress, _ = self.budget_progress(20.0)
            t0 = time.perf_counter()
            try:
                res = simulate(SimulationRequest.model_validate({**base, **extra}), progress=progress)
                wall = time.perf_counter() - t0
                out[label] = {
                    "wall_s": wall,
                    "final_test_error": {k: s.final_test_error for k, s in res.summaries.items()},
                    "max_distance": res.comparison.max_distance if res.comparison else None,
                    "timings": res.timings,
                }
                self.note(
                    f"(b) Figure 1 ({label}, d = {d}, 100 steps, GD + self-consistent): {wall:.2f} s (goal < 5 s); "
                    f"final test error GD {res.summaries['gd'].final_test_error:.4f}, SC {res.summaries['self_consistent'].final_test_error:.4f}"
                )
            except BudgetExceeded as exc:
                out[label] = {"stopped": str(exc), "fraction_done": exc.done / exc.total, "extrapolated_s": exc.elapsed * exc.total / max(exc.done, 1)}
                self.note(f"(b) Figure 1 ({label}): stopped at {exc.done}/{exc.total} after {exc.elapsed:.1f}s, extrapolated {exc.elapsed * exc.total / max(exc.done, 1):.0f}s")
        return out

    def _fig2(self, dynamics: list[str], budget: float, label: str, roots: str | None = None) -> dict[str, Any]:
        d, n = (20, 4) if self.small else (200, 30)
        gs = np.linspace(-2.2, -0.8, n)
        gw = np.linspace(1.75, 2.8, n)
        common = dict(
            d=d, rank=5, dynamics=dynamics, steps=750, lr_constant=50, stopping="paper", record_every=25,
            spectrum_every=0, backend=self.be.name, task_seed=0,
        )
        reqs = [
            SimulationRequest.model_validate({"gamma_sigma2": float(a), "gamma_w": float(b), "seed": i * n + j, **common})
            for i, a in enumerate(gs) for j, b in enumerate(gw)
        ]
        simulate_batch([r.model_copy(update={"steps": 2}) for r in reqs[:2]])  # warm-up at this d
        progress, _ = self.budget_progress(budget)
        t0 = time.perf_counter()
        out: dict[str, Any] = {
            "d": d, "grid": [n, n], "dynamics": dynamics, "goal_s": 60.0, "budget_s": budget, "roots": roots or "default",
        }  # fmt: skip
        try:
            results = simulate_batch(reqs, progress=progress, roots=roots)
        except BudgetExceeded as exc:
            frac = exc.done / exc.total
            out.update(stopped=str(exc), fraction_of_max_steps_done=frac, extrapolated_upper_bound_s=exc.elapsed / max(frac, 1e-9))
            self.note(
                f"(a) Figure 2 {label}: STOPPED by its budget after {exc.elapsed:.1f}s at step ~{int(frac * 750)}/750; "
                f"extrapolated <= {exc.elapsed / max(frac, 1e-9):.0f}s (points stop early, so an upper bound)"
            )
            return out
        wall = time.perf_counter() - t0
        out["wall_s"] = wall
        out["init_s"] = results[0].timings.get("init_s")
        pts = []
        for r in results:
            row = {
                "gamma_sigma2": r.request["gamma_sigma2"],
                "gamma_w": r.request["gamma_w"],
            }
            for name, s in r.summaries.items():
                row[name] = {
                    "min_test_error": s.min_test_error,
                    "stable_rank_at_min": s.stable_rank_at_min,
                    "min_test_error_step": s.min_test_error_step,
                    "steps_run": s.steps_run,
                    "stop_reason": s.stop_reason,
                }
            if r.comparison is not None:
                row["log_max_distance"] = r.comparison.log_max_distance
            pts.append(row)
        out["points"] = pts
        reasons: dict[str, int] = {}
        for r in results:
            for s in r.summaries.values():
                reasons[s.stop_reason] = reasons.get(s.stop_reason, 0) + 1
        steps = np.array([r.summaries["gd"].steps_run for r in results])
        mte = np.array([r.summaries["gd"].min_test_error for r in results])
        out["stop_reasons"] = reasons
        # simulate.py computes the singular values of *every* active point of a dynamics at each step where
        # any point records or stops (GD: a batched eigvalsh): count those steps to size that cost
        rec_steps = {0} | {i for i in range(0, 751, 25)}
        for name in dynamics:
            stops = {r.summaries[name].steps_run for r in results}
            out[f"{name}_distinct_stop_steps"] = len(stops)
            out[f"{name}_steps_with_spectral_metrics"] = len(stops | {i for i in rec_steps if i <= max(stops)})
        out["gd_steps_run_mean"] = float(steps.mean())
        out["gd_steps_run_max"] = int(steps.max())
        out["gd_min_test_error_range"] = [float(np.nanmin(mte)), float(np.nanmax(mte))]
        self.note(
            f"(a) Figure 2 {label} ({n}x{n} at d = {d}): {wall:.1f} s (goal < 60 s; host init {out['init_s']:.1f} s); "
            f"GD steps mean {steps.mean():.0f}, max {steps.max()}; stop reasons {reasons}; "
            f"GD min test error {np.nanmin(mte):.3g}..{np.nanmax(mte):.3g}; steps with a full-batch spectrum "
            f"(record or some point stops): GD {out['gd_steps_with_spectral_metrics']}"
        )
        return out

    def fig2(self) -> dict[str, Any]:
        sc = self.data["parts"].get("self_consistent_step", {})
        gd = self.data["parts"].get("fig2_gd_only", {})
        per_step = sc.get("eigh_direction_s", {}).get("median_s") if isinstance(sc.get("eigh_direction_s"), dict) else None
        if per_step is not None and per_step > 1.5 and not self.small:
            # the eigh step alone would take ~(point-steps / 900) x per_step: far past the budget; say so
            point_steps = sum(p["gd"]["steps_run"] for p in gd["points"]) if "points" in gd else 83000
            est = gd.get("wall_s", 0.0) + point_steps / sc["batch"] * per_step
            self.note(
                f"(a) Figure 2 GD + self-consistent: NOT RUN, the batched eigh direction takes {per_step:.2f}s per "
                f"{sc['batch']} points; estimated {est:.0f}s"
            )
            return {"skipped": "batched eigh too slow", "estimated_s": est, "eigh_direction_s_per_900": per_step}
        return self._fig2(["gd", "self_consistent"], 50.0, "GD + self-consistent (eigh)", roots="eigh")

    def fig2_newton_schulz(self) -> dict[str, Any]:
        """Figure 2 as fig2, the self-consistent step's roots by Newton-Schulz (simulate_batch(roots=...)),
        and how far its summaries are from the eigh run's (when both finished)."""
        out = self._fig2(["gd", "self_consistent"], 50.0, "GD + self-consistent (Newton-Schulz)", roots="newton_schulz")
        ref = self.data["parts"].get("fig2_grid", {})
        if "points" in out and "points" in ref:
            diffs, same_steps = [], 0
            for p, q in zip(out["points"], ref["points"], strict=True):
                a, b = p["self_consistent"]["min_test_error"], q["self_consistent"]["min_test_error"]
                if math.isfinite(a) and math.isfinite(b):
                    diffs.append(abs(a - b) / max(abs(b), 1e-300))
                same_steps += p["self_consistent"]["steps_run"] == q["self_consistent"]["steps_run"]
            out["max_rel_diff_min_test_error_vs_eigh"] = max(diffs) if diffs else None
            out["same_steps_run_as_eigh"] = f"{same_steps}/{len(out['points'])}"
            self.note(
                f"    Newton-Schulz vs eigh on Figure 2: self-consistent min test error within "
                f"{out['max_rel_diff_min_test_error_vs_eigh']:.1e} relative; same stopping step at {out['same_steps_run_as_eigh']} points"
            )
        return out

    def fig2_gd_only(self) -> dict[str, Any]:
        return self._fig2(["gd"], 30.0, "GD only")

    def projection(self) -> dict[str, Any]:
        """Figure 2 (GD + self-consistent) if the step used Newton-Schulz instead of eigh: the GD-only wall
        time plus, per self-consistent point-step, the Newton-Schulz direction's cost measured in (e)
        (900-point batch, per point; the batch shrinks as points stop, so this is a lower bound on the
        per-point cost of small batches) and one batched eigvalsh at recorded steps is ignored. A rough
        guide for the decision, not a measurement."""
        parts = self.data["parts"]
        gd, sc, both = parts.get("fig2_gd_only", {}), parts.get("self_consistent_step", {}), parts.get("fig2_grid", {})
        if "wall_s" not in gd or "newton_schulz_direction_s" not in sc:
            return {"skipped": "needs fig2_gd_only and self_consistent_step"}
        B = sc["batch"]
        point_steps = sum(p["gd"]["steps_run"] for p in gd["points"])
        ns_pp = sc["newton_schulz_direction_s"]["median_s"] / B
        eigh_pp = sc["eigh_direction_s"]["median_s"] / B
        out = {
            "gd_point_steps": point_steps,
            "ns_per_point_s": ns_pp,
            "eigh_per_point_s": eigh_pp,
            "fig2_with_ns_estimate_s": gd["wall_s"] + point_steps * ns_pp,
            "fig2_with_eigh_estimate_s": gd["wall_s"] + point_steps * eigh_pp,
            "fig2_with_eigh_measured_s": both.get("wall_s"),
        }
        self.note(
            f"projection: Figure 2 GD + self-consistent ~ GD-only {gd['wall_s']:.1f}s + {point_steps} point-steps x direction: "
            f"with eigh ~{out['fig2_with_eigh_estimate_s']:.0f}s (measured: "
            f"{'%.1fs' % both['wall_s'] if 'wall_s' in both else 'n/a'}), "
            f"with Newton-Schulz ~{out['fig2_with_ns_estimate_s']:.0f}s"
        )
        return out

    def decision(self) -> dict[str, Any]:
        """The Newton-Schulz question in one table: the direction alone (900 points) and Figure 2 (measured, or
        the budget's extrapolated bound), eigh against Newton-Schulz, and which wins."""
        parts = self.data["parts"]
        sc, e, n = parts.get("self_consistent_step", {}), parts.get("fig2_grid", {}), parts.get("fig2_grid_newton_schulz", {})

        def fig2_s(part: dict[str, Any]) -> float | None:
            return part.get("wall_s") or part.get("extrapolated_upper_bound_s") or part.get("estimated_s")

        rows = {
            "direction_eigh_s": (sc.get("eigh_direction_s") or {}).get("median_s"),
            "direction_newton_schulz_s": (sc.get("newton_schulz_direction_s") or {}).get("median_s"),
            "direction_max_rel_diff": sc.get("newton_schulz_max_rel_diff_vs_eigh"),
            "fig2_eigh_s": fig2_s(e),
            "fig2_newton_schulz_s": fig2_s(n),
            "fig2_eigh_measured": "wall_s" in e,
            "fig2_newton_schulz_measured": "wall_s" in n,
        }
        fig_e, fig_n = rows["fig2_eigh_s"], rows["fig2_newton_schulz_s"]
        dir_e, dir_n = rows["direction_eigh_s"], rows["direction_newton_schulz_s"]
        if fig_e and fig_n:
            winner = "newton_schulz" if fig_n < fig_e else "eigh"
            basis = "Figure 2 wall time"
        elif dir_e and dir_n:
            winner = "newton_schulz" if dir_n < dir_e else "eigh"
            basis = "the direction alone (Figure 2 not measured both ways)"
        else:
            winner, basis = None, "not enough measured"
        rows.update(winner=winner, basis=basis)

        def fmt(v: Any, unit: str = "s") -> str:
            return "n/a" if v is None else f"{v:.3g} {unit}"

        self.note("== DECISION: the self-consistent step's square roots on this backend ==")
        self.note(f"   {'':34s} {'eigh':>14s} {'Newton-Schulz':>14s}")
        self.note(f"   {'direction, one step of the batch':34s} {fmt(dir_e):>14s} {fmt(dir_n):>14s}")
        self.note(
            f"   {'Figure 2 GD + self-consistent':34s} {fmt(fig_e) + ('' if rows['fig2_eigh_measured'] else ' (est.)'):>14s} "
            f"{fmt(fig_n) + ('' if rows['fig2_newton_schulz_measured'] else ' (est.)'):>14s}"
        )
        self.note(f"   agreement of the directions: max rel diff {fmt(rows['direction_max_rel_diff'], '')} (tested bound 1e-10)")
        if winner == "newton_schulz":
            self.note(f"   => Newton-Schulz wins on {basis}: set SELF_CONSISTENT_ROOTS['{self.be.name}'] = 'newton_schulz' in dynamics/simulate.py")
        elif winner == "eigh":
            self.note(f"   => eigh wins on {basis}: keep SELF_CONSISTENT_ROOTS['{self.be.name}'] = 'eigh' (and consider removing dynamics/sqrt_newton_schulz.py)")
        else:
            self.note("   => no decision: " + basis)
        return rows

    def dense_reference(self) -> dict[str, Any]:
        xp, be = self.xp, self.be
        d = 20 if self.small else 200
        w = math.floor(d**2.8)
        sig2 = d**-1.5
        task = draw_task(d, 5, 1.0, 0)
        Y = xp.asarray(task.Y)
        eta = 1e-4
        out: dict[str, Any] = {"d": d, "width": w, "dense_bytes_each": w * d * 8, "order": "sequential"}
        sigma = math.sqrt(sig2)
        if be.name == "cupy":  # drawn on the device (the host would need ~10 s for 1.1e9 normals)
            rs = xp.random.RandomState(0)
            W1 = rs.standard_normal((w, d), dtype=xp.float64) * sigma
            W2 = rs.standard_normal((d, w), dtype=xp.float64) * sigma
        else:
            rng_h = np.random.default_rng(0)
            W1 = rng_h.standard_normal((w, d)) * sigma
            W2 = rng_h.standard_normal((d, w)) * sigma
        state = {"W1": W1, "W2": W2}

        def dense_steps(k: int) -> Callable[[], None]:
            def run() -> None:
                for _ in range(k):
                    state["W1"], state["W2"] = dense_gd_step(xp, state["W1"], state["W2"], Y, eta, "sequential")

            return run

        k = 5
        t = self.timed(dense_steps(k), repeats=3, warmup=1, max_s=30)
        dense_sps = k / t["median_s"]
        out["dense_steps_per_s"] = dense_sps
        # the dense step moves W1, W2 (read ~3x, written 2x) and does 3 GEMMs of 2 d^2 w flops
        out["dense_flops_per_step"] = 6 * d * d * w
        out["dense_achieved_tflops"] = 6 * d * d * w * dense_sps / 1e12
        del state["W1"], state["W2"], W1, W2
        self.free()

        # lindyn: the reduced (2d-wide, Wishart) weights of the same (d, w), raw GD steps and simulate()
        R1, R2 = initial_weights(d, w, sig2, 0, "wishart")
        M1, M2 = xp.asarray(R1[None]), xp.asarray(R2[None])
        eta_x = xp.full((1, 1, 1), eta)
        st = {"W1": M1, "W2": M2}
        k_red = 100

        def reduced_steps() -> None:
            for _ in range(k_red):
                G = xp.matmul(st["W2"], st["W1"]) - Y
                st["W1"], st["W2"] = gd_step(xp, st["W1"], st["W2"], G, eta_x, "sequential")

        t = self.timed(reduced_steps, repeats=3, warmup=1, max_s=20)
        red_sps = k_red / t["median_s"]
        out["lindyn_raw_step_steps_per_s"] = red_sps
        sim_sps: dict[int, float] = {}
        for rec in (50, 1):  # metrics every 50 steps (as a sweep records) and every step (eigvalsh each step)
            req = SimulationRequest.model_validate(
                dict(
                    d=d, rank=5, sigma2=sig2, width=w, dynamics=["gd"], steps=200, lr=eta, gd_update="sequential",
                    stopping="none", record_every=rec, spectrum_every=0, backend=be.name,
                )
            )
            simulate(req.model_copy(update={"steps": 2}))
            t0 = time.perf_counter()
            simulate(req)
            sim_sps[rec] = 200 / (time.perf_counter() - t0)
        out["lindyn_simulate_steps_per_s"] = sim_sps[50]
        out["lindyn_simulate_record_every_1_steps_per_s"] = sim_sps[1]
        out["speedup"] = sim_sps[50] / dense_sps
        out["speedup_record_every_1"] = sim_sps[1] / dense_sps
        out["speedup_raw_step"] = red_sps / dense_sps
        self.note(
            f"(c) dense reference GD at d = {d}, w = {w} ({w * d * 8 / 2**30:.2f} GiB per weight): {dense_sps:.1f} steps/s "
            f"({out['dense_achieved_tflops']:.1f} TFLOP/s); lindyn reduced: simulate() {sim_sps[50]:.0f} steps/s "
            f"(x{out['speedup']:.0f}; record_every=1: {sim_sps[1]:.0f} steps/s, x{out['speedup_record_every_1']:.0f}), "
            f"raw step {red_sps:.0f} steps/s (x{out['speedup_raw_step']:.0f})"
        )
        return out


def _jsonable(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path, help="folder for gpu_bench.json and gpu_bench.txt")
    p.add_argument("--backend", default="auto", choices=["auto", "cupy", "numpy"])
    p.add_argument("--small", action="store_true", help="tiny sizes (d = 20, 4x4 grid): a dry run in seconds")
    p.add_argument("--dry-run", dest="small", action="store_true", help="same as --small")
    p.add_argument("--budget-s", type=float, default=270.0, help="total wall-time budget (default 270 s)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    be = resolve_backend(args.backend)
    bench = Bench(be, args.small, args.out, args.budget_s)
    log(f"gpu_bench: backend {be.name} ({be.device}), small={args.small}, budget {args.budget_s:.0f}s, out {args.out}")
    bench.run_part("env", bench.env, min_left_s=0)
    bench.run_part("gd_flops", bench.gd_flops)
    bench.run_part("dense_reference", bench.dense_reference, min_left_s=20)
    bench.run_part("self_consistent_step", bench.self_consistent_step)
    bench.run_part("fig1", bench.fig1)
    bench.run_part("fig2_gd_only", bench.fig2_gd_only, min_left_s=30)
    bench.run_part("fig2_grid", bench.fig2, min_left_s=30)
    bench.run_part("fig2_grid_newton_schulz", bench.fig2_newton_schulz, min_left_s=20)
    bench.run_part("projection", bench.projection, min_left_s=0)
    bench.run_part("decision", bench.decision, min_left_s=0)
    bench.note(f"total {time.perf_counter() - T_START:.1f}s")
    bench.save()
    errors = [k for k, v in bench.data["parts"].items() if isinstance(v, dict) and "error" in v]
    if errors:
        log(f"parts with errors: {errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

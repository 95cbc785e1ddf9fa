"""The step loops at d = 200 on one BLAS thread (as a worker process runs them): milliseconds per point-step of
``simulate_batch`` (one sub-batch of points, GD sequential or self-consistent, every point running all its
steps), against its kernels alone on arrays of the same shape (GD: A = W2 W1 and ``gd_step``; self-consistent:
``gram_eigh`` and ``self_consistent_step``); loop / kernels - 1 is the time outside the step's kernels
(errors, stopping, minima, metrics at recorded steps, the initialisation excluded).

``--ref DIR`` also times the loop of another copy of the code (``mkdir DIR && git archive COMMIT | tar -x -C
DIR``), loop of this tree and loop of DIR in separate processes, alternated pair by pair: the median of the
pairs' ratios is the speed-up; both runs' results are compared (bit-identical or the largest relative
difference), and their minor page faults per sub-batch step (new memory touched for the first time).

    python -m bench.step_loop [--d 200] [--steps 30] [--pairs 5] [--ref DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

DYNAMICS = ("gd", "self_consistent")
#: useful flops per point-step in units of d^3, as bench.figure2_efficiency counts them
USEFUL = {"gd": 12, "self_consistent": 21}


def _requests(name: str, d: int, steps: int, points: int) -> list[Any]:
    from dynamics import SimulationRequest

    return [
        SimulationRequest.model_validate({
            "d": d, "rank": 5, "gamma_sigma2": -1.5 + 0.01 * p, "gamma_w": 2.2, "dynamics": [name], "lr_constant": 50,
            "steps": steps, "record_every": 50, "spectrum_every": 0, "gd_update": "sequential", "seed": p,
            "backend": "numpy",
        })  # fmt: skip
        for p in range(points)
    ]


def loop_ms(name: str, d: int, steps: int) -> tuple[float, list[float], float]:
    """ms per point-step of the step loop (initialisation excluded), the points' final test errors, and the
    minor page faults (first touches of new memory) per step of the sub-batch, the initialisation included."""
    import importlib
    import resource

    sim = importlib.import_module("dynamics.simulate")
    from threadpoolctl import threadpool_limits

    points = sim.sub_batch_size(sim.resolve_backend("numpy"), d, 8, 64)
    reqs = _requests(name, d, steps, points)
    with threadpool_limits(limits=1, user_api="blas"):
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        res = sim.simulate_batch(reqs)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    t = res[0].timings
    final = [float(r.trajectories[name].metrics["test_error"][-1]) for r in res]
    return (t["total_s"] - t["init_s"]) * 1e3 / (points * (steps + 1)), final, faults / (steps + 1)


def kernels_ms(name: str, d: int, repeats: int = 10) -> float:
    """ms per point of one step's kernels on a sub-batch of random arrays of the loop's shapes."""
    import importlib

    from threadpoolctl import threadpool_limits

    from bench.common import median_time
    from dynamics.steps import gd_step, gram_eigh, self_consistent_step

    sim = importlib.import_module("dynamics.simulate")
    B = sim.sub_batch_size(sim.resolve_backend("numpy"), d, 8, 64)
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((d, d))
    eta, c = np.full((B, 1, 1), 1e-3), np.full((B, 1, 1), 0.1)
    W1, W2 = rng.standard_normal((B, 2 * d, d)) / d, rng.standard_normal((B, d, 2 * d)) / d
    A = np.matmul(W2, W1)

    def gd() -> None:
        A = np.matmul(W2, W1)
        gd_step(np, W1, W2, A - Y, eta, "sequential")

    def sc() -> None:
        s2, V = gram_eigh(np, A)
        self_consistent_step(np, A, A - Y, eta, c, s2, V)

    fn = gd if name == "gd" else sc
    with threadpool_limits(limits=1, user_api="blas"):
        return median_time(fn, repeats) * 1e3 / B


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """This process's float64 matmul rate on one BLAS thread, n x n (the yardstick of bench.figure2_efficiency)."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).standard_normal((n, n))
    with threadpool_limits(limits=1, user_api="blas"):
        a @ a
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def _child(args: argparse.Namespace) -> None:
    out: dict[str, Any] = {"matmul_gflops": matmul_gflops()} if not args.no_kernels else {}
    for name in DYNAMICS:
        loop_ms(name, args.d, 2)  # warm up (the allocator's first arrays)
        ms, final, faults = loop_ms(name, args.d, args.steps)
        out[name] = {"loop_ms": ms, "final": final, "faults": faults}
        if not args.no_kernels:
            out[name]["kernels_ms"] = kernels_ms(name, args.d)
    print("RESULT " + json.dumps(out))


def _run(tree: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": tree}
    # this file run by its path, on the dynamics package of ``tree``
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--d", str(args.d), "--steps", str(args.steps)]
    if tree != os.getcwd():
        cmd.append("--no-kernels")
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT "):]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--ref", default=None, help="another copy of the repository to time the loop of")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-kernels", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args)
        return
    from bench.common import machine

    here = os.getcwd()
    print(f"machine: {machine()}; load {os.getloadavg()}; d = {args.d}, 1 BLAS thread, {args.steps} steps, "
          f"{args.pairs} pairs (medians)", flush=True)  # fmt: skip
    runs: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for _ in range(args.pairs):
        runs.append((_run(here, args), _run(os.path.abspath(args.ref), args) if args.ref else None))
    rate = statistics.median(r["matmul_gflops"] for r, _ in runs)
    print(f"float64 matmul, 1024 x 1024, 1 thread: {rate:.1f} GF/s (useful flops: {USEFUL} d^3 per point-step)")
    for name in DYNAMICS:
        loop = statistics.median(r[name]["loop_ms"] for r, _ in runs)
        kern = statistics.median(r[name]["kernels_ms"] for r, _ in runs)
        over = statistics.median(r[name]["loop_ms"] / r[name]["kernels_ms"] - 1 for r, _ in runs)
        eff = USEFUL[name] * args.d**3 / (loop * 1e-3) / 1e9 / rate
        line = (f"{name:<16} loop {loop:7.3f} ms/point-step ({100 * eff:.0f}% of the matmul rate), "
                f"kernels {kern:7.3f}: outside the kernels {100 * over:5.1f}%")
        if args.ref:
            ref = statistics.median(q[name]["loop_ms"] for _, q in runs if q)
            speedup = statistics.median(q[name]["loop_ms"] / r[name]["loop_ms"] for r, q in runs if q)
            a, b = np.array(runs[0][0][name]["final"]), np.array(runs[0][1][name]["final"])  # type: ignore[index]
            diff = "bit-identical" if np.array_equal(a, b) else f"max rel diff {np.max(np.abs(a - b) / np.abs(b)):.1e}"
            faults = statistics.median(r[name]["faults"] for r, _ in runs)
            ref_faults = statistics.median(q[name]["faults"] for _, q in runs if q)
            line += (f"; ref loop {ref:7.3f}: {speedup:.2f}x ({diff}); page faults per sub-batch step {faults:.0f} "
                     f"(ref {ref_faults:.0f})")
        print(line, flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

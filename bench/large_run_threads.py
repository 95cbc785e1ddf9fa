"""The per-run rule for large single runs: seconds per step of ONE run (GD and self-consistent, no stopping) on
1 BLAS thread against all the cores' BLAS threads, per d, the two alternated pair by pair in the same process;
the median of the pairs' ratios. Where the ratio says more threads pay is the crossover that
``LINDYN_LARGE_RUN_D`` (core/settings.py) sets: a worker task that is one run of d at or above it uses more
BLAS threads while the worker's other processes are idle (workers/celery_app.py, ``blas_threads_for``).
Also whether the two give the same numbers (every recorded metric and the distance; BLAS reductions split
over threads could change the last bits).

    python -m bench.large_run_threads [--d 100,200,300,400,600] [--steps 8] [--pairs 5] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from bench.common import machine
from core.settings import cpu_cores
from dynamics import SimulationRequest, simulate


def step_seconds(req: SimulationRequest, threads: int) -> tuple[float, np.ndarray]:
    """Wall seconds per step of ``simulate(req)`` on ``threads`` BLAS threads, and every recorded metric and
    distance of the run (to compare the numbers)."""
    with threadpool_limits(limits=threads, user_api="blas"):
        t0 = time.perf_counter()
        res = simulate(req)
        wall = time.perf_counter() - t0
    values = [m for t in res.trajectories.values() for m in t.metrics.values()]
    assert res.comparison is not None
    return wall / (req.steps + 1), np.concatenate([*values, res.comparison.distance])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", default="100,200,300,400,600")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=cpu_cores(), help="the many-thread side (default: the cores)")
    args = ap.parse_args()
    many = args.threads
    print(f"machine: {machine()}; load {os.getloadavg()}; 1 vs {many} BLAS threads, {args.pairs} alternated pairs, "
          f"{args.steps} steps of GD + self-consistent, one run")  # fmt: skip
    print(f"{'d':>5} {'1 thread ms/step':>17} {f'{many} threads ms/step':>19} {'ratio 1/many':>13}  same numbers")
    for d in (int(x) for x in args.d.split(",")):
        req = SimulationRequest(d=d, rank=5, gamma_sigma2=-1.85, gamma_w=2.25, dynamics=["gd", "self_consistent"],
                                lr_constant=50, steps=args.steps, record_every=args.steps, spectrum_every=0,
                                gd_update="sequential", backend="numpy")  # fmt: skip
        step_seconds(req.model_copy(update={"steps": 1}), many)  # warm up
        one, multi, ratios, diff = [], [], [], 0.0
        for _ in range(args.pairs):
            t1, e1 = step_seconds(req, 1)
            tm, em = step_seconds(req, many)
            one.append(t1)
            multi.append(tm)
            ratios.append(t1 / tm)
            with np.errstate(all="ignore"):
                rel = np.abs(e1 - em) / np.maximum(np.abs(e1), np.finfo(float).tiny)
            diff = max(diff, float(np.nanmax(rel)) if not np.array_equal(e1, em, equal_nan=True) else 0.0)
        print(f"{d:>5} {statistics.median(one) * 1e3:17.2f} {statistics.median(multi) * 1e3:19.2f} "
              f"{statistics.median(ratios):12.2f}x  {'bit-identical' if diff == 0 else f'max rel diff {diff:.1e}'}", flush=True)
    print(f"load after: {os.getloadavg()}; numpy {np.__version__}")


if __name__ == "__main__":
    main()

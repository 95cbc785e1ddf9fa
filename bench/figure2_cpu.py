"""The paper's Figure 2 grid through the batched path on this machine's CPUs (no service):
d = 200, k = 5, 30 x 30 grid of gamma_sigma2 in linspace(-2.2, -0.8), gamma_w in linspace(1.75, 2.8),
GD, lr_constant 50, paper stopping, at most 750 steps. Prints the wall time and the stop reasons;
writes the per-point summaries to bench/results/figure2_cpu.parquet.

    python -m bench.figure2_cpu [--grid 30] [--d 200] [--chunk 100] [--dynamics gd]
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np

from bench.common import machine
from dynamics import SimulationRequest, simulate_batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--grid", type=int, default=30)
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--dynamics", default="gd")
    ap.add_argument("--steps", type=int, default=750)
    ap.add_argument("--out", default="bench/results/figure2_cpu.parquet")
    args = ap.parse_args()
    gs = np.linspace(-2.2, -0.8, args.grid)
    gw = np.linspace(1.75, 2.8, args.grid)
    reqs = [
        SimulationRequest(
            d=args.d, rank=5, gamma_sigma2=float(a), gamma_w=float(b), dynamics=args.dynamics.split(","),
            lr_constant=50, stopping="paper", steps=args.steps, record_every=50, spectrum_every=0, backend="numpy",
        )  # fmt: skip
        for a in gs
        for b in gw
    ]
    print(f"machine: {machine()}")
    print(f"{len(reqs)} points, d = {args.d}, dynamics {args.dynamics}, chunks of {args.chunk}", flush=True)
    t0 = time.perf_counter()
    results = []
    for i in range(0, len(reqs), args.chunk):
        results += simulate_batch(reqs[i : i + args.chunk])
        done = len(results)
        el = time.perf_counter() - t0
        print(f"  {done}/{len(reqs)} points, {el:7.1f} s elapsed", flush=True)
    wall = time.perf_counter() - t0
    name = args.dynamics.split(",")[0]
    reasons = collections.Counter(r.summaries[name].stop_reason for r in results)
    steps = np.array([r.summaries[name].steps_run for r in results])
    print(f"wall time: {wall:.1f} s ({wall / 60:.1f} min) for {len(reqs)} points; "
          f"{steps.sum()} point-steps, {steps.sum() / wall:.0f} point-steps/s")  # fmt: skip
    print(f"stop reasons: {dict(reasons)}; steps run: median {np.median(steps):.0f}, max {steps.max()}")
    import pandas as pd

    rows = []
    for r in results:
        row = {"gamma_sigma2": r.request["gamma_sigma2"], "gamma_w": r.request["gamma_w"]}
        for dyn, s in r.summaries.items():
            row.update({f"{dyn}.{k}": v for k, v in s.as_dict().items()})
        if r.comparison is not None:
            row["log_max_distance"] = r.comparison.log_max_distance
        rows.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(args.out)
    print(f"summaries written to {args.out}")


if __name__ == "__main__":
    main()

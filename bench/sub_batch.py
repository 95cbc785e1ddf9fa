"""Sub-batches of the batched steps: seconds per point-step of ``simulate_batch`` on one BLAS thread (as a
worker process runs), the points advanced in sub-batches of b points against the whole batch at once,
per d and dynamics; and the sub-batch ``dynamics.simulate.sub_batch_size`` picks.

Every point runs the same number of steps (no stopping), so the batch stays whole; numbers are identical
for every b (the same BLAS and LAPACK call per point).

    python -m bench.sub_batch [--d 50,100,200,400] [--points 36] [--steps 12] [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time

from threadpoolctl import threadpool_limits

from bench.common import machine
from dynamics import SimulationRequest, simulate_batch

sim = importlib.import_module("dynamics.simulate")  # the module (the package exports its function simulate)


def seconds_per_point_step(reqs: list[SimulationRequest], points_per_sub_batch: int, repeats: int) -> float:
    """Median over ``repeats`` of the wall time per point-step; 0 points: the whole batch at once."""
    d = reqs[0].d
    saved = sim.SUB_BATCH_BYTES
    sim.SUB_BATCH_BYTES = points_per_sub_batch * d * d * 8
    try:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            simulate_batch(reqs)
            times.append(time.perf_counter() - t0)
    finally:
        sim.SUB_BATCH_BYTES = saved
    return statistics.median(times) / (len(reqs) * (reqs[0].steps + 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", default="50,100,200,400")
    ap.add_argument("--points", type=int, default=36)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dynamics", default="gd,self_consistent")
    args = ap.parse_args()
    print(f"machine: {machine()}; 1 BLAS thread; {args.points} points, {args.steps} steps each, medians of "
          f"{args.repeats}")  # fmt: skip
    sizes = [1, 2, 4, 8, 16]
    print(f"{'d':>4} {'dynamics':<16} " + " ".join(f"{'b=' + str(b):>8}" for b in sizes)
          + f" {'whole':>8}  best  rule  whole/best  ms per point-step")  # fmt: skip
    with threadpool_limits(limits=1, user_api="blas"):
        for d in (int(x) for x in args.d.split(",")):
            for name in args.dynamics.split(","):
                reqs = [
                    SimulationRequest(d=d, rank=5, gamma_sigma2=-1.5 + 0.01 * p, gamma_w=2.2, dynamics=[name],
                                      lr_constant=50, steps=args.steps, record_every=50, spectrum_every=0,
                                      gd_update="sequential", seed=p, backend="numpy")  # fmt: skip
                    for p in range(args.points)
                ]
                simulate_batch(reqs[:2])  # warm up
                t = {b: seconds_per_point_step(reqs, b, args.repeats) for b in sizes if b < args.points}
                whole = seconds_per_point_step(reqs, 0, args.repeats)
                best = min(t, key=t.__getitem__)
                rule = sim.sub_batch_size(sim.resolve_backend("numpy"), d, 8, args.points)
                cells = " ".join(f"{t[b] * 1e3:8.3f}" if b in t else f"{'':>8}" for b in sizes)
                print(f"{d:>4} {name:<16} {cells} {whole * 1e3:8.3f}  {best:>4}  {rule:>4}  {whole / t[best]:9.2f}x",
                      flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

"""float32 against float64 on the Figure 2 metrics: a sample of the Figure 2 grid (d = 200, GD sequential
and self-consistent, lr_constant 50, paper stopping, <= 750 steps) run in both dtypes (``"dtype"`` of a
request), on one BLAS thread; prints the time of each and the largest differences of the four panels'
metrics (min test error, stable rank at the minimum, step of the minimum, log max distance GD vs
self-consistent) and of the stopping.

    python -m bench.float32_agreement [--grid 6] [--d 200]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from threadpoolctl import threadpool_limits

from bench.common import machine
from dynamics import SimulationRequest, simulate_batch


def figure2_points(d: int, grid: int, steps: int, dtype: str) -> list[SimulationRequest]:
    return [
        SimulationRequest(d=d, rank=5, gamma_sigma2=float(a), gamma_w=float(b), dynamics=["gd", "self_consistent"],
                          lr_constant=50, stopping="paper", steps=steps, record_every=50, spectrum_every=0,
                          gd_update="sequential", dtype=dtype, backend="numpy")  # fmt: skip
        for a in np.linspace(-2.2, -0.8, grid)
        for b in np.linspace(1.75, 2.8, grid)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--grid", type=int, default=6)
    ap.add_argument("--steps", type=int, default=750)
    args = ap.parse_args()
    print(f"machine: {machine()}; 1 BLAS thread; {args.grid}x{args.grid} points, d = {args.d}", flush=True)
    results, wall = {}, {}
    with threadpool_limits(limits=1, user_api="blas"):
        for dtype in ("float64", "float32"):
            t0 = time.perf_counter()
            results[dtype] = simulate_batch(figure2_points(args.d, args.grid, args.steps, dtype))
            wall[dtype] = time.perf_counter() - t0
            print(f"{dtype}: {wall[dtype]:.1f} s", flush=True)
    report: dict[str, object] = {"wall_s": {k: round(v, 2) for k, v in wall.items()},
                                 "float64_over_float32": round(wall["float64"] / wall["float32"], 2)}  # fmt: skip
    for name in ("gd", "self_consistent"):
        s64 = [r.summaries[name] for r in results["float64"]]
        s32 = [r.summaries[name] for r in results["float32"]]
        e64 = np.array([s.min_test_error for s in s64])
        e32 = np.array([s.min_test_error for s in s32])
        r64 = np.array([s.stable_rank_at_min for s in s64])
        r32 = np.array([s.stable_rank_at_min for s in s32])
        step64 = np.array([s.min_test_error_step for s in s64])
        step32 = np.array([s.min_test_error_step for s in s32])
        report[name] = {
            "min_test_error_max_rel_diff": float(np.max(np.abs(e32 - e64) / np.abs(e64))),
            "stable_rank_at_min_max_abs_diff": float(np.max(np.abs(r32 - r64))),
            "stable_rank_at_min_max_rel_diff": float(np.max(np.abs(r32 - r64) / np.abs(r64))),
            "min_test_error_step_max_abs_diff": int(np.max(np.abs(step32 - step64))),
            "min_test_error_step_points_differing": int(np.sum(step32 != step64)),
            "stop_reason_points_differing": sum(a.stop_reason != b.stop_reason for a, b in zip(s64, s32, strict=True)),
            "steps_run_max_abs_diff": max(abs(a.steps_run - b.steps_run) for a, b in zip(s64, s32, strict=True)),
        }
    d64 = np.array([r.comparison.log_max_distance for r in results["float64"]])  # type: ignore[union-attr]
    d32 = np.array([r.comparison.log_max_distance for r in results["float32"]])  # type: ignore[union-attr]
    report["log_max_distance_max_abs_diff"] = float(np.max(np.abs(d32 - d64)))
    report["log_max_distance_range_float64"] = [float(d64.min()), float(d64.max())]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""The paper's Figure 2 grid through a running lindyn service, against the reference approach (one dense run
at a time, the paper's algorithm on the full W1, W2), measured in the same run.

1. Submits the grid as one sweep (d = 200, 30 x 30, lr_constant 50, paper stopping, <= 750 steps) to
   ``--server`` or to a private embedded service (``--embedded``), and times the submission, the wall time
   to the last result and the four-panel figure.
2. The reference: dense GD steps at a few grid points' widths (``--reference-gamma-w``), one at a time on
   the same CPUs; the cost of a dense step is exactly proportional to w (3 products of d x w by w x d or
   d x d), so seconds per step are fitted as a * w and multiplied by the steps each grid point actually ran
   in the sweep. That is the reference's time for the same grid, without its (larger) memory: the widest
   point needs 2 x 200 x 2.8M float64 = 9 GB of weights, which is why it is extrapolated, not run.

    python -m bench.figure2_service --embedded [--d 200] [--grid 30] [--dynamics gd]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from bench.common import machine, median_time
from dynamics.initialisation import dense_weights
from dynamics.task import draw_task
from lindyn.commands.reproduce import _service, figure2_request
from tests.reference import dense_gd_step


def dense_seconds_per_step(d: int, gamma_w: float, gamma_sigma2: float, steps: int = 2) -> tuple[int, float]:
    """(w, median seconds per dense GD step) at this grid point."""
    width = math.floor(d**gamma_w)
    task = draw_task(d, 5, 1.0, 0)
    W1, W2 = dense_weights(d, width, d**gamma_sigma2, 0)
    eta = 1.0 / (50 * max(task.A_star_op_norm, d**gamma_sigma2 * width))
    state = [W1, W2]

    def run() -> None:
        for _ in range(steps):
            state[0], state[1] = dense_gd_step(np, state[0], state[1], task.Y, eta, "sequential")

    return width, median_time(run, repeats=3, warmup=0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="http://127.0.0.1:8000")
    ap.add_argument("--embedded", action="store_true")
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--grid", type=int, default=30)
    ap.add_argument("--dynamics", default="gd")
    ap.add_argument("--steps", type=int, default=750)
    ap.add_argument("--reference-gamma-w", default="1.75,2.1,2.45", help="widths d^g of the dense reference runs")
    args = ap.parse_args()
    from lindyn.client import Client

    print(f"machine: {machine()}", flush=True)
    base, axes = figure2_request(args.d, args.grid, args.dynamics.split(","), args.steps)
    with _service(args.server, args.embedded) as url:
        client = Client(url)
        t0 = time.perf_counter()
        sweep = client.sweep(base, axes, name=f"bench figure2 d={args.d} grid={args.grid}")
        t_submit = time.perf_counter() - t0
        print(f"submitted {sweep.total} points in {t_submit:.3f} s", flush=True)
        sweep.wait(progress=False)
        wall = time.perf_counter() - t0
        t1 = time.perf_counter()
        png = sweep.phase_diagram("/tmp/lindyn_bench_figure2.png", metric="figure2")
        t_figure = time.perf_counter() - t1
        table = sweep.table()
    steps_run = table[f"{args.dynamics.split(',')[0]}.steps_run"].to_numpy()
    widths = np.floor(args.d ** table["gamma_w"].to_numpy())

    samples = [dense_seconds_per_step(args.d, float(g), -1.5) for g in args.reference_gamma_w.split(",")]
    w_s = np.array([w for w, _ in samples], dtype=float)
    t_s = np.array([t for _, t in samples])
    a = float((w_s @ t_s) / (w_s @ w_s))  # least squares through the origin: seconds per step = a * w
    reference = float(a * (widths * (steps_run + 1)).sum())  # +1: the error at step 0 costs a product too
    report = {
        "points": int(sweep.total),
        "counts": sweep.counts,
        "point_steps": int(steps_run.sum()),
        "submit_s": round(t_submit, 3),
        "wall_s": round(wall, 1),
        "figure_s": round(t_figure, 2),
        "figure": str(png),
        "dense_reference_samples": [{"width": int(w), "s_per_step": float(f"{t:.4g}")} for w, t in samples],
        "dense_reference_estimate_s": round(reference, 0),
        "speed_up": round(reference / wall, 1),
    }
    print(json.dumps(report, indent=2))
    print(f"lindyn through the service: {wall:.0f} s; the dense reference, one run at a time: about "
          f"{reference / 3600:.1f} h ({reference / wall:.0f}x)")  # fmt: skip


if __name__ == "__main__":
    main()

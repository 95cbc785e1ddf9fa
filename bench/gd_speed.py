"""GD steps per second at d = 200, width floor(d^2.25): lindyn (Wishart-reduced, 2d wide) against the dense
reference (the paper's algorithm on the full W1, W2, NumPy), measured in the same run.

    python -m bench.gd_speed [--d 200] [--gamma-w 2.25] [--dense-steps 3] [--steps 200]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from bench.common import machine, median_time
from dynamics import SimulationRequest, simulate
from dynamics.initialisation import dense_weights
from dynamics.task import draw_task
from tests.reference import dense_gd_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--gamma-w", type=float, default=2.25)
    ap.add_argument("--gamma-sigma2", type=float, default=-1.85)
    ap.add_argument("--dense-steps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    d = args.d
    width = math.floor(d**args.gamma_w)
    sigma2 = d**args.gamma_sigma2
    print(f"machine: {machine()}")
    print(f"d = {d}, width = {width}, sigma^2 = {sigma2:.3g}")

    # reference: full W1 (w x d), W2 (d x w)
    task = draw_task(d, 5, 1.0, 0)
    W1, W2 = dense_weights(d, width, sigma2, 0)
    eta = 1.0 / (5 * task.A_star_op_norm)
    state = [W1, W2]

    def dense_steps() -> None:
        for _ in range(args.dense_steps):
            state[0], state[1] = dense_gd_step(np, state[0], state[1], task.Y, eta, "simultaneous")

    t_dense = median_time(dense_steps, repeats=args.repeats, warmup=0) / args.dense_steps
    del W1, W2, state

    # lindyn: the whole run loop (errors every step, metrics recorded every 50 steps)
    req = SimulationRequest(
        d=d, rank=5, gamma_sigma2=args.gamma_sigma2, gamma_w=args.gamma_w, dynamics=["gd"], steps=args.steps,
        lr=eta, record_every=50, spectrum_every=0, backend="numpy",
    )  # fmt: skip
    t_lindyn = median_time(lambda: simulate(req), repeats=args.repeats) / args.steps
    # lindyn with every step recorded (spectral metrics each step)
    req_all = req.model_copy(update={"record_every": 1})
    t_lindyn_all = median_time(lambda: simulate(req_all), repeats=args.repeats) / args.steps

    print(f"dense reference : {1 / t_dense:10.2f} steps/s  ({t_dense * 1e3:9.2f} ms/step, median of {args.repeats})")
    print(f"lindyn reduced  : {1 / t_lindyn:10.2f} steps/s  ({t_lindyn * 1e3:9.2f} ms/step, record_every=50)")
    print(f"lindyn reduced  : {1 / t_lindyn_all:10.2f} steps/s  ({t_lindyn_all * 1e3:9.2f} ms/step, record_every=1)")
    print(f"speed-up        : {t_dense / t_lindyn:10.1f}x  (record_every=50), {t_dense / t_lindyn_all:.1f}x (record_every=1)")


if __name__ == "__main__":
    main()

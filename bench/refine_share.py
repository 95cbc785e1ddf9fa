"""Where adaptive refinement puts its points on the paper's axes (dynamics/refine.py, docs/method.md section 8):
d = 20, k = 2, GD with the paper's stopping, gamma_sigma2 in [-3, 0] x gamma_w in [0.5, 3.5] on a coarse 5 x 5
grid, rounds of refinement on a summary metric. Prints, per budget, metric and seed, the points each round added,
the share of them within half a coarse cell's diagonal (0.53) of the active/lazy line gamma_sigma2 + gamma_w = 1
and their median distance to it, against the share of the rectangle within that distance (points spread evenly).

    python -m bench.refine_share [--budgets 30,60,120] [--metrics min_test_error,stable_rank_at_min] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import machine
from tests.dynamics.test_refine import (
    NEAR,
    PAPER_ROUNDS,
    distance_to_active_lazy_line,
    paper_refinement,
    uniform_share_near_line,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budgets", default="30,60,120")
    ap.add_argument("--metrics", default="min_test_error,stable_rank_at_min")
    ap.add_argument("--seeds", default="0,1,2", help="task_seed = seed = each of these")
    ap.add_argument("--rounds", type=int, default=PAPER_ROUNDS)
    args = ap.parse_args()
    print(machine())
    uniform = uniform_share_near_line()
    print(f"share of the rectangle within {NEAR:.3f} of the line (an even spread): {uniform:.2f}")
    print("budget  metric               seed  per round   share near  median distance  share / even")
    for budget in (int(b) for b in args.budgets.split(",")):
        for metric in args.metrics.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                per_round, _ = paper_refinement(budget, metric, args.rounds, task_seed=seed, seed=seed)
                added = [p for r in per_round for p in r]
                dist = distance_to_active_lazy_line(added)
                share = float(np.mean(dist <= NEAR)) if added else float("nan")
                print(f"{budget:6d}  {metric:20s} {seed:4d}  {str([len(r) for r in per_round]):10s}  "
                      f"{share:10.2f}  {float(np.median(dist)) if added else float('nan'):15.3f}  "
                      f"{share / uniform:12.2f}")


if __name__ == "__main__":
    main()

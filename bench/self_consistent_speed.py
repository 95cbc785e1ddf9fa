"""Self-consistent step at d = 200: one decomposition (eigh of A^T A) against the reference's two matrix
square roots per step, measured in the same run, single and batched.

    python -m bench.self_consistent_speed [--d 200] [--batch 16]
"""

from __future__ import annotations

import argparse

import numpy as np

from bench.common import machine, median_time
from dynamics.reference import two_root_self_consistent_step
from dynamics.steps import self_consistent_step
from dynamics.task import draw_task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    d, B = args.d, args.batch
    print(f"machine: {machine()}")
    task = draw_task(d, 5, 1.0, 0)
    rng = np.random.default_rng(0)
    A = rng.standard_normal((B, d, d)) * 0.1 + task.A_star
    Y = task.Y
    eta, c = 1e-3, 12.0
    eta_b = np.full((B, 1, 1), eta)
    c_b = np.full((B, 1, 1), c)

    t_ref = median_time(lambda: [two_root_self_consistent_step(np, A[b], Y, eta, c) for b in range(B)], args.repeats) / B
    t_one = median_time(lambda: [self_consistent_step(np, A[b : b + 1], A[b : b + 1] - Y, eta_b[:1], c_b[:1]) for b in range(B)], args.repeats) / B
    t_batch = median_time(lambda: self_consistent_step(np, A, A - Y, eta_b, c_b), args.repeats) / B
    import scipy.linalg as sl

    def sqrtm_step(a: np.ndarray) -> np.ndarray:  # the usual reference code: scipy.linalg.sqrtm, twice
        eye = np.eye(d)
        g = a - Y
        return a - eta * (sl.sqrtm(a @ a.T + c * c * eye) @ g + g @ sl.sqrtm(a.T @ a + c * c * eye))

    n_sqrtm = min(B, 4)
    t_sqrtm = median_time(lambda: [sqrtm_step(A[b]) for b in range(n_sqrtm)], max(3, args.repeats // 2)) / n_sqrtm
    print(f"d = {d}, batch = {B}; per point and step, median of {args.repeats}:")
    print(f"reference, two scipy sqrtm  : {t_sqrtm * 1e3:8.2f} ms   (lindyn one decomposition: {t_sqrtm / t_one:.1f}x faster)")
    print(f"reference, two square roots : {t_ref * 1e3:8.2f} ms")
    print(f"lindyn, one decomposition   : {t_one * 1e3:8.2f} ms   speed-up {t_ref / t_one:.2f}x")
    print(f"lindyn, batched ({B:3d})        : {t_batch * 1e3:8.2f} ms   speed-up {t_ref / t_batch:.2f}x")


if __name__ == "__main__":
    main()

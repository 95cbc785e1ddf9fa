"""Self-consistent step at d = 200: one decomposition (eigh of A^T A) against the reference's two matrix
square roots per step (eigh-based, and scipy.linalg.sqrtm as the paper-style code used), single and
batched. Reference and lindyn are timed alternately, so load on this shared machine hits both alike;
the ratio printed is the median of the per-round ratios.

    python -m bench.self_consistent_speed [--d 200] [--batch 16] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg as sl

from bench.common import machine
from dynamics.steps import self_consistent_step
from dynamics.task import draw_task
from tests.reference import two_root_self_consistent_step


def _time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=9)
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
    eye = np.eye(d)

    def sqrtm_step(a: np.ndarray) -> np.ndarray:
        g = a - Y
        return a - eta * (sl.sqrtm(a @ a.T + c * c * eye) @ g + g @ sl.sqrtm(a.T @ a + c * c * eye))

    runs: dict[str, Callable[[], Any]] = {
        "reference, two eigh square roots": lambda: [two_root_self_consistent_step(np, A[b], Y, eta, c) for b in range(B)],
        "lindyn, one decomposition": lambda: [
            self_consistent_step(np, A[b : b + 1], A[b : b + 1] - Y, eta_b[:1], c_b[:1]) for b in range(B)
        ],
        "lindyn, batched": lambda: self_consistent_step(np, A, A - Y, eta_b, c_b),
    }
    for fn in runs.values():
        fn()  # warm up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            times[name].append(_time(fn) / B)
    # scipy's sqrtm (complex Schur) is timed apart: interleaved, it slows what runs after it
    n_sqrtm = min(B, 2)
    sqrtm_times = [_time(lambda: [sqrtm_step(A[b]) for b in range(n_sqrtm)]) / n_sqrtm for _ in range(3)]
    ref = times["reference, two eigh square roots"]
    print(f"d = {d}, batch = {B}; ms per point and step (median of {args.rounds} rounds), speed-up = median of per-round ratios")
    for name, ts in times.items():
        ratio = statistics.median(r / t for r, t in zip(ref, ts, strict=True))
        print(f"  {name:<34} {statistics.median(ts) * 1e3:8.2f} ms   reference-eigh / this = {ratio:5.2f}")
    t_sqrtm = statistics.median(sqrtm_times)
    one = statistics.median(times["lindyn, one decomposition"])
    print(f"  {'reference, two scipy sqrtm':<34} {t_sqrtm * 1e3:8.2f} ms   (lindyn one decomposition is {t_sqrtm / one:.1f}x faster)")


if __name__ == "__main__":
    main()

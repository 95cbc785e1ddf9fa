"""The images in docs/figures, made with service.plots (no service):

- figure1.png: the paper's Figure 1 (method.md section 6) simulated here: d = 500, k = 5,
  gamma_sigma2 = -1.85, gamma_w = 2.25, lr_constant 5, 100 steps, GD (sequential, as the paper) and
  self-consistent, metrics and singular values at every step (lindyn.commands.reproduce.FIGURE1).
- figure2_gd.png: the paper's Figure 2 panels from bench/results/figure2_cpu.parquet (the 30 x 30, d = 200 GD
  grid of bench.figure2_cpu; it has no log_max_distance, which needs GD and self-consistent).

    python -m bench.figures [--out docs/figures] [--format png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from dynamics import SimulationRequest, simulate
from service.plots import phase_diagram, run_figure, run_figure_inputs

from lindyn.commands.reproduce import FIGURE1  # the paper's settings, GD in its (sequential) order


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/figures")
    ap.add_argument("--format", default="png", choices=["png", "svg"])
    ap.add_argument("--table", default="bench/results/figure2_cpu.parquet")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    result = simulate(SimulationRequest.model_validate(FIGURE1))
    t1 = time.perf_counter()
    (out / f"figure1.{args.format}").write_bytes(run_figure(**run_figure_inputs(result), fmt=args.format))
    summaries = {k: (round(v.min_test_error, 4), v.min_test_error_step) for k, v in result.summaries.items()}
    assert result.comparison is not None
    print(f"figure1: simulated in {t1 - t0:.1f} s, drawn in {time.perf_counter() - t1:.1f} s; "
          f"(min test error, step): {summaries}; log max distance {result.comparison.log_max_distance:.2f}")

    table = pd.read_parquet(args.table)
    t2 = time.perf_counter()
    title = (f"Figure 2, GD: d = 200, k = 5, {table['gamma_sigma2'].nunique()} x {table['gamma_w'].nunique()} grid, "
             "lr_constant 50, paper stopping, at most 750 iterations")
    image = phase_diagram(table, "figure2", args.format, d=200, rank=5, title=title)
    (out / f"figure2_gd.{args.format}").write_bytes(image)
    print(f"figure2_gd: {len(table)} grid points drawn in {time.perf_counter() - t2:.1f} s")


if __name__ == "__main__":
    main()

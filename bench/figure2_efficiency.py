"""A Figure 2 sample through the embedded service: useful flops per second against this machine's float64
matmul rate on all its cores, both measured in the same run.

The sample: d = 200, k = 5, a ``--grid`` x ``--grid`` grid of gamma_sigma2 in linspace(-2.2, -0.8) and gamma_w
in linspace(1.75, 2.8), GD (sequential, the paper's code) and self-consistent, lr_constant 50, paper stopping,
<= 750 steps. Useful flops, over the steps each point ran: 12 d^3 per GD point-step (A = W2 W1, W2^T G and
G W1^T on the reduced 2d-wide weights, 4 d^3 each) and 21 d^3 per self-consistent point-step (A^T A and the
5 matmuls of the direction, 2 d^3 each, and the symmetric eigendecomposition counted as 9 d^3). The
matmul rate: one process per core, each on one BLAS thread, multiplying 1024 x 1024 float64 matrices at the
same time; measured before and after the sweeps, the mean used. ``--configs`` runs the sweep once per
service configuration, in this run: ``default`` (one worker process per core, one BLAS thread each, the
sweep spread across them), ``one-process`` (one worker process on all the cores' BLAS threads, the sweep
one task: the service's shape before issue 16).

    python -m bench.figure2_efficiency [--grid 6] [--d 200] [--configs default,one-process]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time

from bench.common import machine
from lindyn.commands.reproduce import _service, figure2_request
from core.settings import Settings, cpu_cores

GD_FLOPS, SC_FLOPS = 12, 21  # per point-step, in units of d^3
#: service settings (LINDYN_* variables) of each configuration
CONFIGS: dict[str, dict[str, str]] = {
    "default": {},  # one worker process per core, one BLAS thread each, chunks spread across them
    "one-process": {"LINDYN_WORKER_PROCESSES": "1"},  # 1 process: cores // 1 BLAS threads, one chunk
}


def _matmul_rate(seconds: float, n: int = 1024) -> float:
    """Float64 flops per second of one process on one BLAS thread, n x n matmuls for about ``seconds``."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
        out = np.empty((n, n))
        np.matmul(a, b, out=out)
        count, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            np.matmul(a, b, out=out)
            count += 1
        return 2.0 * n**3 * count / (time.perf_counter() - t0)


def machine_matmul_rate(seconds: float = 3.0) -> float:
    """Float64 flops per second of the whole machine: one process per core, one BLAS thread each, at once."""
    cores = cpu_cores()
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        return float(sum(pool.map(_matmul_rate, [seconds] * cores)))


def run_sample(settings: dict[str, str], d: int, grid: int, steps: int) -> dict[str, float]:
    """The sample through a private embedded service with ``settings``: wall time, point-steps, useful flops."""
    from lindyn.client import Client

    base, axes = figure2_request(d, grid, ["gd", "self_consistent"], steps)
    base["gd_update"] = "sequential"
    with _service("", True, settings) as url:
        client = Client(url)
        t0 = time.perf_counter()
        sweep = client.sweep(base, axes, name=f"bench figure2_efficiency d={d} grid={grid}")
        sweep.wait(progress=False)
        wall = time.perf_counter() - t0
        table = sweep.table()
    gd_steps = int(table["gd.steps_run"].sum())
    sc_steps = int(table["self_consistent.steps_run"].sum())
    flops = float(d) ** 3 * (GD_FLOPS * gd_steps + SC_FLOPS * sc_steps)
    # the service's deal (core/jobs.py chunks: grid order, chunk j of m holds points j, j + m, ...; m from
    # LINDYN_TASKS_PER_PROCESS tasks per process), each task taken by the first free process: the busiest process's
    # flops over the mean process's, the wall time's floor relative to a perfect split
    work = GD_FLOPS * table["gd.steps_run"].to_numpy() + SC_FLOPS * table["self_consistent.steps_run"].to_numpy()
    processes = int(settings.get("LINDYN_WORKER_PROCESSES", "0")) or cpu_cores()
    size = int(settings.get("LINDYN_SWEEP_CHUNK_SIZE", Settings.model_fields["sweep_chunk_size"].default))
    per_process = int(settings.get("LINDYN_TASKS_PER_PROCESS", Settings.model_fields["tasks_per_process"].default))
    m = max(-(-len(work) // size), min(len(work), processes * per_process))
    busy = [0.0] * processes
    for j in range(m):
        busy[busy.index(min(busy))] += float(work[j::m].sum())
    imbalance = max(busy) / (sum(busy) / processes)
    return {"wall_s": wall, "gd_point_steps": gd_steps, "sc_point_steps": sc_steps, "flops": flops,
            "chunks": m, "imbalance": imbalance}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--grid", type=int, default=6)
    ap.add_argument("--steps", type=int, default=750)
    ap.add_argument("--configs", default="default", help=f"comma-separated, among {', '.join(CONFIGS)}")
    args = ap.parse_args()
    configs = args.configs.split(",")
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        ap.error(f"unknown configs {sorted(unknown)}")

    print(f"machine: {machine()}; {cpu_cores()} cores; load {os.getloadavg()}", flush=True)
    rate_before = machine_matmul_rate()
    print(f"float64 matmul rate, {cpu_cores()} processes x 1 thread: {rate_before / 1e9:.1f} GF/s", flush=True)
    results = {}
    for name in configs:
        load = os.getloadavg()
        r = run_sample(CONFIGS[name], args.d, args.grid, args.steps)
        results[name] = {**r, "load_before": load, "load_after": os.getloadavg()}
        print(f"{name}: {args.grid}x{args.grid} points, {r['gd_point_steps']} GD + {r['sc_point_steps']} "
              f"self-consistent point-steps in {r['wall_s']:.1f} s: {r['flops'] / r['wall_s'] / 1e9:.1f} GF/s "
              f"(load {load[0]:.1f} -> {os.getloadavg()[0]:.1f}); {r['chunks']} tasks, the busiest process "
              f"had {r['imbalance']:.2f}x the mean process's flops", flush=True)  # fmt: skip
    rate_after = machine_matmul_rate()
    rate = (rate_before + rate_after) / 2
    print(f"float64 matmul rate after: {rate_after / 1e9:.1f} GF/s; used: the mean, {rate / 1e9:.1f} GF/s")
    report = {}
    for name, r in results.items():
        eff = r["flops"] / r["wall_s"] / rate
        report[name] = {"wall_s": round(r["wall_s"], 1), "useful_GF_per_s": round(r["flops"] / r["wall_s"] / 1e9, 1),
                        "efficiency": round(eff, 3), "gd_point_steps": r["gd_point_steps"],
                        "sc_point_steps": r["sc_point_steps"], "chunks": r["chunks"],
                        "busiest_process_over_mean": round(r["imbalance"], 3), "load_before": [round(x, 2) for x in r["load_before"]],
                        "load_after": [round(x, 2) for x in r["load_after"]]}  # fmt: skip
    print(json.dumps({"matmul_GF_per_s": [round(rate_before / 1e9, 1), round(rate_after / 1e9, 1)], **report},
                     indent=2))  # fmt: skip
    for name, r in report.items():
        print(f"{name}: {r['useful_GF_per_s']} GF/s of {rate / 1e9:.1f}: {100 * r['efficiency']:.0f}% of the "
              f"machine's float64 matmul rate, {r['wall_s']} s")  # fmt: skip
        full = r["wall_s"] * (30 * 30) / (args.grid * args.grid)
        print(f"{name}: the whole 30 x 30 grid extrapolated from this sample (the same mean steps per point): "
              f"{full:.0f} s = {full / 60:.1f} min")  # fmt: skip
    if len(report) > 1:
        first, *rest = report
        for name in rest:
            print(f"{first} vs {name}: {report[name]['wall_s'] / report[first]['wall_s']:.2f}x faster")


if __name__ == "__main__":
    main()

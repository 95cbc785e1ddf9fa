"""The memory model of a run (``dynamics.request.run_bytes``, docs/reliability.md) against the peak resident
memory measured while the run runs: each case in a fresh Python process that imports dynamics, runs a tiny
warm-up (BLAS and NumPy's buffers loaded), reads its resident size, runs the case with ``simulate_batch`` and
reads its peak resident size (``ru_maxrss``). Printed: the estimate, the measured increase and their ratio
(measured / estimated; the model is an upper estimate, so at most 1 is the aim).

    python -m bench.run_memory [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Any

_CHILD = r"""
import json, resource, sys
from dynamics import SimulationRequest, simulate_batch
from dynamics.request import run_bytes

case = json.loads(sys.argv[1])
reqs = [SimulationRequest(**{**case["request"], "seed": s}) for s in range(case.get("batch", 1))]
simulate_batch([SimulationRequest(d=4, rank=1, gamma_sigma2=-1.5, gamma_w=2.0, steps=3, dynamics=reqs[0].dynamics)])
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
before = rss()
simulate_batch(reqs)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"estimate": run_bytes(reqs), "measured": peak - before}))
"""

BASE = {"rank": 5, "gamma_sigma2": -1.85, "gamma_w": 2.25}
CASES: list[dict[str, Any]] = [
    {"name": "d=256, 100 steps, gd", "request": {**BASE, "d": 256, "steps": 100, "dynamics": ["gd"]}},
    {"name": "d=512, 20 steps, gd", "request": {**BASE, "d": 512, "steps": 20, "dynamics": ["gd"]}},
    {"name": "d=512, 10 steps, gd + self_consistent",
     "request": {**BASE, "d": 512, "steps": 10, "dynamics": ["gd", "self_consistent"]}},
    {"name": "d=384, 10 steps, all four dynamics",
     "request": {**BASE, "d": 384, "steps": 10, "dynamics": ["gd", "self_consistent", "lazy", "balanced"]}},
    {"name": "d=384, 10 steps, gd, dense init w=500 (< 2d)",
     "request": {"d": 384, "rank": 5, "gamma_sigma2": -1.85, "width": 500, "steps": 10, "dynamics": ["gd"]}},
    {"name": "d=64, 20000 steps, gd, every step recorded with its spectrum",
     "request": {**BASE, "d": 64, "steps": 20000, "record_every": 1, "spectrum_every": 1, "dynamics": ["gd"]}},
    {"name": "batch of 16, d=128, 50 steps, gd + self_consistent", "batch": 16,
     "request": {**BASE, "d": 128, "steps": 50, "dynamics": ["gd", "self_consistent"]}},
]


def measure(case: dict[str, Any]) -> dict[str, int]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(case)], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="the first three cases only")
    args = ap.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"{'case':58s} {'estimate MiB':>12s} {'measured MiB':>12s} {'ratio':>6s}")
    ratios = []
    for case in CASES[:3] if args.quick else CASES:
        got = measure(case)
        ratio = got["measured"] / got["estimate"]
        ratios.append(ratio)
        print(f"{case['name']:58s} {got['estimate'] / 2**20:12.1f} {got['measured'] / 2**20:12.1f} {ratio:6.2f}")
    print(f"measured / estimated: median {statistics.median(ratios):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f}")


if __name__ == "__main__":
    main()

"""The cost of averaging a sweep's table over a replicate axis (service/replicates.py), at the grid limit:
a synthetic table of 10 000 grid points (50 gamma_sigma2 x 20 gamma_w x 10 seeds, GD and self-consistent:
the columns of service.grid.table), aggregated over seed into 1 000 rows. Reference, in the same run:
writing the plain table as JSON (what GET /v1/sweeps/{id}/table does with it), so the ratio says what
?aggregate=seed adds to a table request.

    python -m bench.replicates [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np
import pyarrow as pa

from bench.common import machine, median_time
from dynamics.result import SUMMARY_METRICS
from service.exports import Export, _json_chunks
from service.replicates import View, table_view


def synthetic_table(n_gs: int = 50, n_gw: int = 20, n_seed: int = 10) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """A finished sweep's table: random metric values (a tenth of them null, as unfinished runs)."""
    rng = np.random.default_rng(0)
    gs, gw, seed = np.meshgrid(np.linspace(-2.2, -0.8, n_gs), np.linspace(1.75, 2.8, n_gw), np.arange(n_seed),
                               indexing="ij")
    n = gs.size
    columns: dict[str, list[Any]] = {"gamma_sigma2": gs.ravel().tolist(), "gamma_w": gw.ravel().tolist(),
                                     "seed": seed.ravel().astype(int).tolist(),
                                     "run_id": [f"{i:036d}" for i in range(n)], "status": ["succeeded"] * n}
    types: dict[str, Any] = {"gamma_sigma2": pa.float64(), "gamma_w": pa.float64(), "seed": pa.int64(),
                             "run_id": pa.string(), "status": pa.string()}
    for name in ("gd", "self_consistent"):
        for q in SUMMARY_METRICS:
            values = rng.random(n)
            column = [None if rng.random() < 0.1 else (float(v) if q.type is float else int(v * 100)) for v in values]
            columns[f"{name}.{q.name}"] = column if q.numeric else ["plateau"] * n
            types[f"{name}.{q.name}"] = pa.float64() if q.type is float else pa.int64() if q.type is int else pa.string()
    columns["log_max_distance"] = rng.random(n).tolist()
    types["log_max_distance"] = pa.float64()
    return columns, types


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    columns, types = synthetic_table()
    axes = ["gamma_sigma2", "gamma_w", "seed"]
    view = View(at={}, aggregate=["seed"], remaining=["gamma_sigma2", "gamma_w"])

    def plain_json() -> bytes:
        return b"".join(_json_chunks(Export.of_columns(columns, types, "t")))

    def aggregate() -> Any:
        return table_view(columns, types, axes, view)

    out, _ = aggregate()
    reference = median_time(plain_json, args.repeats)
    aggregated = median_time(aggregate, args.repeats)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} (1 min)")
    print(f"table: {len(columns['run_id'])} rows x {len(columns)} columns -> {len(out['runs'])} rows x {len(out)} columns")
    print(f"plain table as JSON (reference): median {reference * 1e3:.1f} ms over {args.repeats}")
    print(f"aggregate over seed:             median {aggregated * 1e3:.1f} ms over {args.repeats}")
    print(f"ratio aggregate / reference: {aggregated / reference:.2f}")


if __name__ == "__main__":
    main()

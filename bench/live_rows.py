"""The cost of live rows: a run executed by the worker's own code (workers.tasks.execute_run) storing its
trajectory rows as it goes (LINDYN_LIVE_ROWS=true, the default: with each progress write) against the same
run storing them only at the end (LINDYN_LIVE_ROWS=false), in the same process, on one BLAS thread (as a
worker process runs), in alternating pairs (the order flipped each pair); the median of the pairs' ratios.

The worst case by default: a row recorded every step (record_every = 1), a spectrum every 10 steps, and a
progress write at every progress call of dynamics (LINDYN_PROGRESS_INTERVAL_S=0: about 100 per run).

    python -m bench.live_rows [--d 200] [--steps 150] [--pairs 5] [--database-url URL] [--progress-interval 0]

Beside the ratio (noisy on a loaded machine): the time each run spent in the worker's writes (its progress
writes, with the rows when live, and the result: each a transaction, commit included), the live run's
extra time there as a share of the other run's time (the cost, measured directly), and the CPU time of this
process.

The database: a SQLite file in a temporary folder (the embedded default), or ``--database-url`` (e.g. a
PostgreSQL database; it is migrated first).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select
from threadpoolctl import threadpool_limits

import migrations
from bench.common import machine
from core import Settings, get_sessionmaker, session_scope
from dynamics import SimulationRequest
from models import TrajectoryPoint
from models.runs import new_run
import workers.tasks
from workers.tasks import execute_run

#: seconds spent writing since the last reset: the progress writes (with the rows, when live) and the result
_IN_WRITES = [0.0]
#: CPU seconds of this process during the last timed_run
_CPU_S = [0.0]


def _timed(fn):  # type: ignore[no-untyped-def]
    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _IN_WRITES[0] += time.perf_counter() - t0

    return timed


# the worker's own writes, timed where it calls them (a transaction each, its commit included)
workers.tasks.ProgressWriter.write = _timed(workers.tasks.ProgressWriter.write)  # type: ignore[method-assign]
workers.tasks.write_result = _timed(workers.tasks.write_result)


def timed_run(settings: Settings, request: SimulationRequest) -> tuple[float, int]:
    """Queue a run of ``request``, execute it as a worker does; (seconds, rows stored). The CPU seconds of
    this process (less sensitive to other processes on a loaded machine) go to ``_CPU_S``."""
    factory = get_sessionmaker(settings.db_url)
    with session_scope(factory) as s:
        run = new_run(request)
        s.add(run)
    _IN_WRITES[0] = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    status = execute_run(run.id, settings)
    elapsed = time.perf_counter() - t0
    _CPU_S[0] = time.process_time() - c0
    assert status == "succeeded", status
    with factory() as s:
        rows = int(s.scalar(select(func.count()).select_from(TrajectoryPoint).where(TrajectoryPoint.run_id == run.id)) or 0)
    return elapsed, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=200)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--record-every", type=int, default=1)
    ap.add_argument("--spectrum-every", type=int, default=10)
    ap.add_argument("--progress-interval", type=float, default=0.0, help="LINDYN_PROGRESS_INTERVAL_S")
    ap.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary folder")
    args = ap.parse_args()

    request = SimulationRequest(d=args.d, rank=5, gamma_sigma2=-1.5, gamma_w=2.0, steps=args.steps,
                                record_every=args.record_every, spectrum_every=args.spectrum_every,
                                dynamics=["gd", "self_consistent"])  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="lindyn-bench-live-") as tmp:
        common = {"data_dir": Path(tmp), "progress_interval_s": args.progress_interval, "cancel_poll_interval_s": 1.0}
        if args.database_url:
            common["database_url"] = args.database_url
        live = Settings(**common, live_rows=True)
        end = Settings(**common, live_rows=False)
        migrations.upgrade(live.db_url)
        database = live.db_url.split("://", 1)[0]
        print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}; 1 BLAS thread; {database}")
        print(f"run: d = {args.d}, {args.steps} steps, gd + self_consistent, record_every = {args.record_every}, "
              f"spectrum_every = {args.spectrum_every}, progress interval {args.progress_interval} s")
        ratios, t_live, t_end, shares, cpu_ratios = [], [], [], [], []
        with threadpool_limits(1):
            timed_run(end, request)  # warm-up: imports, BLAS, the database's first pages
            for pair in range(args.pairs):
                order = [("live", live), ("end", end)] if pair % 2 == 0 else [("end", end), ("live", live)]
                got, writes, cpu = {}, {}, {}
                for name, settings in order:
                    got[name] = timed_run(settings, request)
                    cpu[name], writes[name] = _CPU_S[0], _IN_WRITES[0]
                (a, rows_live), (b, rows_end) = got["live"], got["end"]
                shares.append((writes["live"] - writes["end"]) / b)
                cpu_ratios.append(cpu["live"] / cpu["end"])
                assert rows_live == rows_end, (rows_live, rows_end)  # the same rows in the end, none doubled
                t_live.append(a)
                t_end.append(b)
                ratios.append(a / b)
                print(f"pair {pair + 1}: live {a:.3f} s, at the end {b:.3f} s, ratio {a / b:.4f} ({rows_live} rows); "
                      f"in writes {writes['live']:.3f} s vs {writes['end']:.3f} s: the rows' share "
                      f"{100 * shares[-1]:+.2f}% of the run at the end; CPU "
                      f"{cpu['live']:.3f} s vs {cpu['end']:.3f} s, ratio {cpu_ratios[-1]:.4f}")
        print(f"median: live {statistics.median(t_live):.3f} s, at the end {statistics.median(t_end):.3f} s; "
              f"median ratio live / at the end = {statistics.median(ratios):.4f} "
              f"(cost {100 * (statistics.median(ratios) - 1):+.2f}%); the rows' extra time in the worker's writes "
              f"(progress and result, commits included): median {100 * statistics.median(shares):+.2f}% of the run; CPU time of this process: median ratio "
              f"{statistics.median(cpu_ratios):.4f}; load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

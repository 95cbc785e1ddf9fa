"""The whole path on the GPU machine (issue 18, item 2): an embedded lindyn service (SQLite and the filesystem
broker under a temporary data folder) with the API alone (``lindyn serve --no-worker``) and one
``lindyn worker --queues gpu``; the paper's Figure 2 sweep submitted through HTTP with ``"backend": "cupy"``
(one chunk: the whole grid as one stacked batch on the device), waited for, its table and four-panel
figure fetched.

    python -m bench.gpu_service --out DIR [--backend cupy|numpy] [--d 200] [--grid 30] [--timeout-s 150]

Writes under DIR: service.json (timings, counts, stop reasons, the worker's timings per run), service.log
(the API's and the worker's output), figure2.png, figure2.csv. With ``--backend numpy`` the sweep goes to
the cpu queue (a ``lindyn worker --queues cpu``): the CPU dry run of bench/gpu_check.sh (DRY_RUN=1), with a
small grid. Exit status 0 only if every run succeeded and both files were fetched.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.load import free_port
from lindyn.commands.reproduce import figure2_request
from core.jobs import queue_for

LINDYN = [sys.executable, "-m", "lindyn.cli"]


def _wait_healthy(url: str, procs: list[subprocess.Popen[bytes]], timeout: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a service process exited while starting (see service.log)")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not answer /health within {timeout:.0f} s")


def _wait_worker_ready(log_path: Path, worker: subprocess.Popen[bytes], timeout: float) -> float:
    """Seconds until the Celery worker logged that it is ready (it consumes from then on)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if worker.poll() is not None:
            raise RuntimeError("the worker exited while starting (see service.log)")
        if b" ready." in log_path.read_bytes():
            return time.perf_counter() - t0
        time.sleep(0.2)
    raise RuntimeError(f"the worker was not ready within {timeout:.0f} s")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each main process (Celery's warm shutdown, uvicorn's), then SIGKILL to its group."""
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in reversed(procs):
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lindyn.client import Client

    out: Path = args.out
    report: dict[str, Any] = {
        "backend": args.backend, "queue": queue_for(args.backend), "d": args.d, "grid": [args.grid, args.grid],
        "dynamics": args.dynamics.split(","), "steps": args.steps, "goal_s": 60.0,
    }  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    tmp = tempfile.TemporaryDirectory(prefix="lindyn-gpu-service-")
    log = open(out / "service.log", "wb")  # noqa: SIM115 - closed below
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINDYN_")}
        env.update(LINDYN_DATA_DIR=str(Path(tmp.name) / "data"), PYTHONUNBUFFERED="1", LINDYN_PROGRESS_INTERVAL_S="2")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        # the API first: it migrates the database and makes the broker's folders
        procs.append(subprocess.Popen([*LINDYN, "serve", "--no-worker", "--port", str(port)], env=env,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
        report["api_start_s"] = _wait_healthy(url, procs, 60)
        procs.append(subprocess.Popen(
            [*LINDYN, "worker", "--queues", report["queue"], "--concurrency", "1", "--loglevel", "INFO"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        ))  # fmt: skip
        report["worker_start_s"] = _wait_worker_ready(out / "service.log", procs[-1], 90)
        client = Client(url)
        base, axes = figure2_request(args.d, args.grid, report["dynamics"], args.steps)
        base["backend"] = args.backend
        t_submit = time.perf_counter()
        sweep = client.sweep(base, axes, name=f"gpu_service figure2 d={args.d} grid={args.grid} {args.backend}",
                             chunk_size=args.chunk_size or args.grid * args.grid)  # fmt: skip
        report["sweep"] = sweep.id
        report["submit_s"] = time.perf_counter() - t_submit
        try:
            sweep.wait(progress=False, timeout=args.timeout_s, poll=0.2, max_poll=0.5)
            report["timed_out"] = False
        except TimeoutError:
            sweep.refresh()
            report["timed_out"] = True
        # wall time from the submission to the last result (the worker was ready before; polled every 0.5 s)
        report["wall_s"] = time.perf_counter() - t_submit
        report["counts"] = sweep.counts
        report["progress"] = sweep.data.get("progress")
        t1 = time.perf_counter()
        sweep.phase_diagram(out / "figure2.png", metric="figure2")
        report["figure_s"] = time.perf_counter() - t1
        t1 = time.perf_counter()
        sweep.export_table(out / "figure2.csv")
        report["table_s"] = time.perf_counter() - t1
        table = sweep.table()
        report["stop_reasons"] = {
            name: table[f"{name}.stop_reason"].value_counts().to_dict() for name in report["dynamics"]
        }
        report["gd_steps_run_mean"] = float(table[f"{report['dynamics'][0]}.steps_run"].mean())
        first = next(iter(sweep.runs(limit=1)), None)
        if first is not None:  # where it ran: the worker's backend and device, and its timings
            report["first_run"] = {k: first.data.get(k) for k in ("backend", "device", "timings", "status")}
        report["total_s"] = time.perf_counter() - t0
        report["ok"] = (not report["timed_out"]) and report["counts"].get("succeeded", 0) == args.grid * args.grid
        return report
    finally:
        _stop(procs)
        log.close()
        tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--backend", default="cupy", choices=["cupy", "numpy"])
    p.add_argument("--d", type=int, default=200)
    p.add_argument("--grid", type=int, default=30)
    p.add_argument("--steps", type=int, default=750)
    p.add_argument("--dynamics", default="gd,self_consistent")
    p.add_argument("--chunk-size", type=int, default=None, help="points per worker task (default: the whole grid)")
    p.add_argument("--timeout-s", type=float, default=150.0, help="longest wait for the sweep")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        report = run(args)
    except Exception as exc:  # noqa: BLE001 - reported in service.json, the exit status says it failed
        report = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    (args.out / "service.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "first_run"}, indent=1, default=str))
    if "wall_s" in report:
        print(f"Figure 2 through the service ({report['backend']}, {args.grid}x{args.grid} at d = {args.d}): "
              f"{report['wall_s']:.1f} s from submission to the last result (goal < 60 s on one H200); "
              f"counts {report['counts']}")  # fmt: skip
    return 0 if report.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())

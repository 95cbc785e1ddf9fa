"""Export of a sweep to MLflow: time and HTTP requests (to lindyn and to the MLflow server), measured against
the reference way of the same job in the same run: each point exported as a run of its own (its trajectory
fetched one request per run, no parent), into another experiment.

1. Submits a sweep of ``--points`` runs (gamma_w x seed, d = ``--d``, ``--steps`` GD + self-consistent steps)
   to ``--server`` or to a private embedded service (``--embedded``), waits for it.
2. Starts an ``mlflow server`` (SQLite backend store, local artifact folder; .venv-mlflow from
   ``make mlflow-server``, or ``--mlflow``) unless ``--tracking-uri`` is given.
3. Times ``lindyn export mlflow --sweep`` (lindyn.bridges.mlflow), then the same again (idempotent: nothing
   logged), then the reference, counting every HTTP request each makes.

    python -m bench.mlflow_export --embedded [--points 100] [--d 10] [--steps 50]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine
from lindyn.commands.reproduce import _service

ROOT = Path(__file__).resolve().parents[1]


class Requests:
    """Every HTTP request made: to lindyn (an httpx transport) and to MLflow (requests' Session)."""

    def __init__(self) -> None:
        self.lindyn: collections.Counter[str] = collections.Counter()
        self.mlflow: collections.Counter[str] = collections.Counter()

    def reset(self) -> None:
        self.lindyn.clear()
        self.mlflow.clear()

    def transport(self) -> httpx.BaseTransport:
        counts = self.lindyn

        class Counting(httpx.HTTPTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                parts = request.url.path.split("/")
                counts[f"{request.method} /{'/'.join('{id}' if len(p) == 36 else p for p in parts[1:])}"] += 1
                return super().handle_request(request)

        return Counting()

    @contextmanager
    def mlflow_counted(self) -> Iterator[None]:
        import requests

        real = requests.Session.request
        counts = self.mlflow

        def request(session: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            path = "/" + url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
            if "/artifacts/" in path:
                path = path.split("/artifacts/", 1)[0] + "/artifacts/..."
            counts[f"{method} {path}"] += 1
            return real(session, method, url, *args, **kwargs)

        requests.Session.request = request  # type: ignore[method-assign]
        try:
            yield
        finally:
            requests.Session.request = real  # type: ignore[method-assign]

    def summary(self) -> dict[str, Any]:
        return {"lindyn": sum(self.lindyn.values()), "mlflow": sum(self.mlflow.values()),
                "lindyn_by_endpoint": dict(self.lindyn), "mlflow_by_endpoint": dict(self.mlflow)}  # fmt: skip


@contextmanager
def mlflow_server(command: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="lindyn-bench-mlflow-") as folder:
        with __import__("socket").socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        log = open(Path(folder) / "mlflow.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [command, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--artifacts-destination", f"{folder}/artifacts"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        uri = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if httpx.get(f"{uri}/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (Path(folder) / "mlflow.log").read_text()[-3000:]
                    raise SystemExit(f"mlflow server did not start:\n{tail}")
                time.sleep(0.5)
            print(f"mlflow server at {uri}", flush=True)
            yield uri
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(30)
            log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", default="http://127.0.0.1:8000")
    ap.add_argument("--embedded", action="store_true")
    ap.add_argument("--tracking-uri", help="an MLflow server already running (else one is started here)")
    ap.add_argument("--mlflow", default=str(ROOT / ".venv-mlflow" / "bin" / "mlflow"), help="the mlflow command")
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--no-reference", action="store_true", help="skip the one-run-at-a-time reference")
    args = ap.parse_args()
    from lindyn.bridges.mlflow import MlflowExporter
    from lindyn.client import Client

    print(f"machine: {machine()}", flush=True)
    seeds = max(1, int(math.sqrt(args.points)))
    base = {"d": args.d, "rank": 2, "gamma_sigma2": -1.5, "steps": args.steps, "spectrum_every": 10,
            "dynamics": ["gd", "self_consistent"]}  # fmt: skip
    axes = {"gamma_w": (1.6, 2.4, args.points // seeds), "seed": list(range(seeds))}
    counted = Requests()
    report: dict[str, Any] = {}
    with _service(args.server, args.embedded) as url, Client(url, transport=counted.transport()) as client:
        sweep = client.sweep(base, axes, name=f"bench mlflow {args.points}")
        sweep.wait(progress=False)
        trajectory_rows = len(sweep.trajectories())
        report["grid"] = {"runs": sweep.total, "counts": {k: v for k, v in sweep.counts.items() if v},
                          "trajectory_rows": trajectory_rows}  # fmt: skip
        print(json.dumps(report["grid"]), flush=True)
        server = mlflow_server(args.mlflow) if args.tracking_uri is None else _given(args.tracking_uri)
        with server as uri, counted.mlflow_counted():
            stamp = time.strftime("%H%M%S")
            exporter = MlflowExporter(uri, f"bench-sweep-{stamp}")
            for label in ("export", "export_again"):
                counted.reset()
                t0 = time.perf_counter()
                done = exporter.export_sweep(client.get_sweep(sweep.id))
                report[label] = {"s": round(time.perf_counter() - t0, 2), "logged": len(done.logged),
                                 "existing": len(done.existing), **counted.summary()}  # fmt: skip
                print(label, json.dumps(report[label]), flush=True)
            if not args.no_reference:
                one = MlflowExporter(uri, f"bench-one-by-one-{stamp}")
                counted.reset()
                t0 = time.perf_counter()
                for run in list(client.get_sweep(sweep.id).runs()):
                    one.export_run(run)
                report["one_by_one"] = {"s": round(time.perf_counter() - t0, 2), **counted.summary()}
                print("one_by_one", json.dumps(report["one_by_one"]), flush=True)
    print(json.dumps(report, indent=2))
    e = report["export"]
    print(f"export of a {report['grid']['runs']}-run sweep to MLflow: {e['s']} s, {e['lindyn']} requests to lindyn, "
          f"{e['mlflow']} to MLflow; again (nothing to log): {report['export_again']['s']} s, "
          f"{report['export_again']['mlflow']} requests to MLflow")  # fmt: skip
    if "one_by_one" in report:
        o = report["one_by_one"]
        print(f"the reference, one run at a time: {o['s']} s ({o['s'] / e['s']:.2f}x), {o['lindyn']} requests to "
              f"lindyn, {o['mlflow']} to MLflow")  # fmt: skip


@contextmanager
def _given(uri: str) -> Iterator[str]:
    yield uri


if __name__ == "__main__":
    main()

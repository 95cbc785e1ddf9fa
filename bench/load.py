"""Load benchmark: concurrent clients against a real lindyn server on loopback, for a fixed time.

    python -m bench.load                       # embedded: `lindyn serve` (SQLite + filesystem broker + worker)
    python -m bench.load --postgres URL --redis URL   # production shape: uvicorn + celery worker processes
    python -m bench.load --url http://127.0.0.1:8000  # a server already running (loopback only)

Three phases of ``--duration / 3`` seconds each, ``--clients`` concurrent clients (asyncio + httpx):

- ``reads``:   GET /v1/runs/{id} (mostly), its trajectory, and the list of runs, over runs made beforehand;
- ``submits``: POST /v1/runs of small, distinct requests (new seeds: no cache hits);
- ``mixed``:   both at once (1 submission for 4 reads).

It reports the throughput and p50/p95 latency of each endpoint, the number of 5xx answers (must be 0), and
then waits (bounded by ``--drain``) for every accepted run to reach a terminal state, and says how many did.
Bounded in time (``--duration`` at most 600 s) and in count (``--max-requests``); it talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

LINDYN = [sys.executable, "-m", "lindyn.cli"]
SMALL = {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 10, "dynamics": ["gd"],
         "spectrum_every": 0}
TERMINAL = {"succeeded", "failed", "diverged", "cancelled"}


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    accepted: list[str] = field(default_factory=list)
    requests: int = 0

    def record(self, name: str, seconds: float, status: int) -> None:
        self.latencies[name].append(seconds)
        self.statuses[name][status] += 1
        self.requests += 1


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Target:
    """The server under load: started here (and stopped at the end) or given by --url."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tmp = tempfile.TemporaryDirectory(prefix="lindyn-load-")
        self.url = args.url

    def start(self) -> str:
        if self.url:
            host = urlsplit(self.url).hostname
            if host not in ("127.0.0.1", "localhost", "::1"):
                raise SystemExit(f"loopback only: {self.url}")
            return self.url
        data = Path(self.tmp.name) / "data"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINDYN_")}
        env.update(LINDYN_DATA_DIR=str(data), PYTHONUNBUFFERED="1", LINDYN_PROGRESS_INTERVAL_S="5")
        port = free_port()
        log = open(Path(self.tmp.name) / "server.log", "wb")  # noqa: SIM115 - lives as long as the processes
        if self.args.postgres:
            env.update(LINDYN_DATABASE_URL=self.args.postgres, LINDYN_BROKER_URL=self.args.redis)
            subprocess.run([*LINDYN, "migrate"], env=env, check=True, capture_output=True)
            self.procs.append(subprocess.Popen(
                [*LINDYN, "worker", "--queues", "cpu", "--concurrency", str(self.args.worker_concurrency),
                 "--loglevel", "WARNING"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "service.main:app", "--host", "127.0.0.1", "--port", str(port),
                 "--log-level", "warning", "--no-access-log"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        else:
            self.procs.append(subprocess.Popen(
                [*LINDYN, "serve", "--port", str(port), "--concurrency", str(self.args.worker_concurrency)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"server did not become healthy:\n{(Path(self.tmp.name) / 'server.log').read_text()[-3000:]}")

    def stop(self) -> None:
        import signal

        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        self.tmp.cleanup()


async def call(client: httpx.AsyncClient, stats: Stats, name: str, method: str, url: str, **kw: Any) -> Any:
    start = time.perf_counter()
    try:
        r = await client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        stats.errors[f"{name}: {type(exc).__name__}"] += 1
        return None
    stats.record(name, time.perf_counter() - start, r.status_code)
    return r


async def client_loop(client: httpx.AsyncClient, stats: Stats, phase: str, until: float, readable: list[str],
                      finished: list[str], seeds: Any, max_requests: int) -> None:
    rng = random.Random()
    while time.monotonic() < until and stats.requests < max_requests:
        submit = phase == "submits" or (phase == "mixed" and rng.random() < 0.2)
        if submit:
            body = {**SMALL, "seed": next(seeds)}
            r = await call(client, stats, "POST /v1/runs", "POST", "/v1/runs", json=body)
            if r is not None and r.status_code in (200, 202):
                stats.accepted.append(r.json()["id"])
            continue
        x = rng.random()
        if x < 0.75:
            await call(client, stats, "GET /v1/runs/{id}", "GET", f"/v1/runs/{rng.choice(readable)}")
        elif x < 0.9 and finished:
            await call(client, stats, "GET /v1/runs/{id}/trajectory", "GET",
                       f"/v1/runs/{rng.choice(finished)}/trajectory")
        else:
            await call(client, stats, "GET /v1/runs", "GET", "/v1/runs", params={"limit": 20})


def report(phase: str, stats: Stats, seconds: float) -> int:
    print(f"\n== {phase}: {stats.requests} requests in {seconds:.1f} s ({stats.requests / seconds:.0f}/s)")
    print(f"   {'endpoint':32s} {'count':>7s} {'per s':>7s} {'p50 ms':>8s} {'p95 ms':>8s}  statuses")
    n5xx = 0
    for name in sorted(stats.latencies):
        lat = stats.latencies[name]
        codes = dict(sorted(stats.statuses[name].items()))
        n5xx += sum(n for c, n in codes.items() if c >= 500)
        print(f"   {name:32s} {len(lat):7d} {len(lat) / seconds:7.0f} {pct(lat, 0.5) * 1e3:8.1f} "
              f"{pct(lat, 0.95) * 1e3:8.1f}  {codes}")
    for err, n in stats.errors.items():
        print(f"   transport error {err}: {n}")
    print(f"   5xx: {n5xx}")
    return n5xx + sum(stats.errors.values())


async def run(args: argparse.Namespace, base: str) -> int:
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    seeds = iter(range(random.randrange(10**9), 10**12))
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        # some runs to read, finished ones for trajectories
        seed_ids = []
        for _ in range(20):
            r = await client.post("/v1/runs", json={**SMALL, "seed": next(seeds)})
            r.raise_for_status()
            seed_ids.append(r.json()["id"])
        finished = await drain(client, seed_ids, 60)
        bad = 0
        all_accepted: list[str] = list(seed_ids)
        per_phase = args.duration / 3
        for phase in ("reads", "submits", "mixed"):
            stats = Stats()
            until = time.monotonic() + per_phase
            start = time.monotonic()
            await asyncio.gather(*(client_loop(client, stats, phase, until, seed_ids, finished, seeds,
                                               args.max_requests) for _ in range(args.clients)))
            bad += report(phase, stats, time.monotonic() - start)
            all_accepted += stats.accepted
        print(f"\n== waiting (at most {args.drain:.0f} s) for the {len(all_accepted)} accepted runs to finish")
        start = time.monotonic()
        done = await drain(client, all_accepted, args.drain)
        print(f"   {len(done)}/{len(all_accepted)} runs reached a terminal state in {time.monotonic() - start:.1f} s")
        if len(done) < len(all_accepted):
            bad += 1
        m = await client.get("/metrics")
        for line in m.text.splitlines():
            if line.startswith("lindyn_runs{"):
                print("  ", line)
    return bad


async def drain(client: httpx.AsyncClient, ids: list[str], timeout: float) -> list[str]:
    """Wait until the runs are terminal; those that are (by the deadline). Checked concurrently, 32 at a time,
    and each pass only once the server says nothing is queued or running (the bench's own server)."""
    pending = set(ids)
    done: list[str] = []
    deadline = time.monotonic() + timeout
    sem = asyncio.Semaphore(32)
    last_pass = time.monotonic()

    async def terminal(rid: str) -> bool:
        async with sem:
            try:
                r = await client.get(f"/v1/runs/{rid}")
            except httpx.HTTPError:
                return False
            return r.status_code == 200 and r.json()["status"] in TERMINAL

    while pending and time.monotonic() < deadline:
        active = 0
        for status in ("queued", "running"):
            try:
                r = await client.get("/v1/runs", params={"status": status, "limit": 1})
                active += int(r.json().get("total", 0)) if r.status_code == 200 else 1
            except (httpx.HTTPError, ValueError):
                active += 1
        if active and len(pending) > 64 and time.monotonic() - last_pass < 15 and time.monotonic() < deadline - 5:
            await asyncio.sleep(1.0)  # not all can be terminal yet: no full pass (one every 15 s at least)
            continue
        last_pass = time.monotonic()
        batch = list(pending)
        for rid, ok in zip(batch, await asyncio.gather(*(terminal(r) for r in batch))):
            if ok:
                pending.discard(rid)
                done.append(rid)
        if pending:
            await asyncio.sleep(1.0)
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server (loopback only); default: start one here")
    p.add_argument("--postgres", help="PostgreSQL URL: start uvicorn + a celery worker on it (needs --redis)")
    p.add_argument("--redis", help="Redis broker URL (with --postgres)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load in all (3 phases)")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients")
    p.add_argument("--worker-concurrency", type=int, default=1, help="worker processes of the started server")
    p.add_argument("--max-requests", type=int, default=200_000, help="stop a phase after this many requests")
    p.add_argument("--drain", type=float, default=600.0, help="seconds to wait for accepted runs to finish")
    args = p.parse_args(argv)
    if not 0 < args.duration <= 600 or not 0 < args.drain <= 1800:
        p.error("--duration must be in (0, 600] and --drain in (0, 1800]")
    if bool(args.postgres) != bool(args.redis):
        p.error("--postgres and --redis go together")
    target = Target(args)
    try:
        base = target.start()
        print(f"lindyn load: {base}, {args.clients} clients, {args.duration:.0f} s "
              f"({'PostgreSQL + Redis' if args.postgres else 'given server' if args.url else 'embedded'})")
        bad = asyncio.run(run(args, base))
    finally:
        target.stop()
    print("\nOK" if bad == 0 else f"\nPROBLEMS: {bad}")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Load benchmark: concurrent clients against a real lindyn server on loopback, for a fixed time.

    python -m bench.load                       # embedded: `lindyn serve` (SQLite + filesystem broker + worker)
    python -m bench.load --postgres URL --redis URL   # production shape: uvicorn + celery worker processes
    python -m bench.load --url http://127.0.0.1:8000  # a server already running (loopback only)

Four phases of ``--duration / 4`` seconds each, ``--clients`` concurrent clients:

- ``run-reads``: GET /v1/runs/{id} only, over runs made beforehand (the goal: at least 300 per second);
- ``reads``:   GET /v1/runs/{id} (mostly), its trajectory, and the list of runs;
- ``submits``: POST /v1/runs of small, distinct requests (new seeds: no cache hits);
- ``mixed``:   both at once (1 submission for 4 reads);

then ``--twins`` new requests each sent three times at once (one run each: the others are answered 200 with it;
a request that made more than one run counts as a problem).

It reports the throughput and p50/p95 latency of each endpoint, the number of 5xx answers (must be 0), the
API process's CPU time per request (when it started the server: the figure that does not depend on how much
of the cores the load generator takes), and then waits (bounded by ``--drain``) for every accepted run to
reach a terminal state, and says how many did.

The clients speak HTTP/1.1 over keep-alive asyncio streams (``Connection``), not httpx: on these 2 cores httpx
spends more CPU per request than the lindyn server does, so it, not the server, set the throughput.
Bounded in time (``--duration`` at most 600 s) and in count (``--max-requests``); it talks only to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
        self.api_pid: int | None = None  # the process serving HTTP, when started here

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
                 "--log-level", "warning", "--no-access-log", "--workers", str(self.args.api_processes)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        else:
            self.procs.append(subprocess.Popen(
                [*LINDYN, "serve", "--port", str(port), "--concurrency", str(self.args.worker_concurrency),
                 "--api-processes", str(self.args.api_processes)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        self.api_pid = self.procs[-1].pid  # uvicorn, or `lindyn serve` (uvicorn in-process; workers are children)
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


class Connection:
    """One keep-alive HTTP/1.1 connection: a request, then its whole response (Content-Length or chunked)."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        try:
            self.writer.write(head.encode() + b"\r\n" + (body or b""))
            status = int((await self.reader.readline()).split()[1])
            headers = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                key, _, value = line.decode("latin-1").partition(":")
                headers[key.strip().lower()] = value.strip()
            if "content-length" in headers:
                data = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                parts = []
                while size := int((await self.reader.readline()).split(b";")[0], 16):
                    parts.append(await self.reader.readexactly(size))
                    await self.reader.readexactly(2)
                await self.reader.readline()
                data = b"".join(parts)
            else:
                data = await self.reader.read()
                headers["connection"] = "close"
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def call(conn: Connection, stats: Stats, name: str, method: str, path: str, body: Any = None) -> Any:
    """One request; its JSON answer (None on a transport error or a non-JSON answer)."""
    start = time.perf_counter()
    try:
        status, data = await conn.request(method, path, None if body is None else json.dumps(body).encode())
    except (OSError, IndexError, ValueError, asyncio.IncompleteReadError) as exc:
        stats.errors[f"{name}: {type(exc).__name__}"] += 1
        return None
    stats.record(name, time.perf_counter() - start, status)
    return json.loads(data) if status < 300 and data[:1] == b"{" else {"status": status}


async def client_loop(base: str, stats: Stats, phase: str, until: float, readable: list[str],
                      finished: list[str], seeds: Any, max_requests: int) -> None:
    rng = random.Random()
    conn = Connection(base)
    try:
        while time.monotonic() < until and stats.requests < max_requests:
            submit = phase == "submits" or (phase == "mixed" and rng.random() < 0.2)
            if phase == "run-reads":
                await call(conn, stats, "GET /v1/runs/{id}", "GET", f"/v1/runs/{rng.choice(readable)}")
                continue
            if submit:
                body = {**SMALL, "seed": next(seeds)}
                r = await call(conn, stats, "POST /v1/runs", "POST", "/v1/runs", body)
                if r is not None and "id" in r:
                    stats.accepted.append(r["id"])
                continue
            x = rng.random()
            if x < 0.75:
                await call(conn, stats, "GET /v1/runs/{id}", "GET", f"/v1/runs/{rng.choice(readable)}")
            elif x < 0.9 and finished:
                await call(conn, stats, "GET /v1/runs/{id}/trajectory", "GET",
                           f"/v1/runs/{rng.choice(finished)}/trajectory")
            else:
                await call(conn, stats, "GET /v1/runs", "GET", "/v1/runs?limit=20")
    finally:
        conn.close()


def report(phase: str, stats: Stats, seconds: float, cpu_s: float | None) -> int:
    print(f"\n== {phase}: {stats.requests} requests in {seconds:.1f} s ({stats.requests / seconds:.0f}/s)")
    if cpu_s is not None and stats.requests:
        print(f"   API process CPU: {cpu_s * 1e3 / stats.requests:.2f} ms per request "
              f"({cpu_s / seconds * 100:.0f}% of a core)")
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


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time so far of the API: the process serving HTTP and, when it is uvicorn's
    supervisor, its API worker processes (not a Celery worker started beside it)."""
    if pid is None:
        return None
    stats = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(path.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]),
                                        (path.parent / "cmdline").read_bytes())
    # uvicorn's workers are spawned by multiprocessing; `lindyn serve`'s Celery worker is `-m lindyn.cli worker`
    api = [pid] + [p for p, (ppid, _, cmd) in stats.items() if ppid == pid and b"spawn_main" in cmd]
    return sum(stats[p][1] for p in api if p in stats) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace, base: str, api_pid: int | None = None) -> int:
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
        per_phase = args.duration / 4
        for phase in ("run-reads", "reads", "submits", "mixed"):
            stats = Stats()
            until = time.monotonic() + per_phase
            start, cpu_start = time.monotonic(), cpu_seconds(api_pid)
            await asyncio.gather(*(client_loop(base, stats, phase, until, seed_ids, finished, seeds,
                                               args.max_requests) for _ in range(args.clients)))
            cpu_end = cpu_seconds(api_pid)
            cpu = None if cpu_start is None or cpu_end is None else cpu_end - cpu_start
            bad += report(phase, stats, time.monotonic() - start, cpu)
            all_accepted += stats.accepted
        twins, duplicated = await identical_submissions(client, seeds, args.twins)
        all_accepted += twins
        bad += duplicated
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


async def identical_submissions(
    client: httpx.AsyncClient, seeds: Any, n: int, copies: int = 3
) -> tuple[list[str], int]:
    """``n`` new requests, each sent ``copies`` times at once: one run each (the others answered 200 with it).
    The runs made, and how many requests made more than one (duplicated runs)."""
    made: list[str] = []
    duplicated = 0
    statuses: dict[int, int] = defaultdict(int)
    for _ in range(n):
        body = {**SMALL, "seed": next(seeds)}
        answers = await asyncio.gather(*(client.post("/v1/runs", json=body) for _ in range(copies)),
                                       return_exceptions=True)
        ids = set()
        for a in answers:
            if isinstance(a, httpx.Response):
                statuses[a.status_code] += 1
                if a.status_code in (200, 202):
                    ids.add(a.json()["id"])
            else:
                statuses[-1] += 1
        duplicated += len(ids) > 1
        made += sorted(ids)
    print(f"\n== identical submissions: {n} requests x {copies} at once: statuses {dict(sorted(statuses.items()))}, "
          f"{duplicated} made more than one run")
    return made, duplicated + sum(c for code, c in statuses.items() if code >= 500 or code < 0)


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
    p.add_argument("--duration", type=float, default=40.0, help="seconds of load in all (4 phases)")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients")
    p.add_argument("--worker-concurrency", type=int, default=1, help="worker processes of the started server")
    p.add_argument("--api-processes", type=int, default=1, help="API processes (uvicorn workers) of the started server")
    p.add_argument("--max-requests", type=int, default=200_000, help="stop a phase after this many requests")
    p.add_argument("--drain", type=float, default=600.0, help="seconds to wait for accepted runs to finish")
    p.add_argument("--twins", type=int, default=50, help="requests each sent 3 times at once (must make one run each)")
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
        bad = asyncio.run(run(args, base, target.api_pid))
    finally:
        target.stop()
    print("\nOK" if bad == 0 else f"\nPROBLEMS: {bad}")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

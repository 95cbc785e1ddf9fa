"""The dashboard's two heavy pages, in process (the server's time, without a network): the page of a 30 x 30
sweep (900 runs) and the runs page with 10 000 runs in the database. The database is filled directly through
the models layer (finished runs with summaries for GD and self-consistent).

A page is its HTML plus the JSON calls its script makes (Plotly.js and the page's own JS/CSS are static and
cached: their sizes are printed apart). Goals (issue 14): the sweep page under 200 ms and 1 MB; a runs page
under 100 ms. The reference, measured in the same run, is GET /health (the floor of a request here).

    python -m bench.dashboard [--runs 10000] [--grid 30] [--postgres [SERVER_URL]] [--db-url URL (an empty database)]

By default on a SQLite file in a temporary folder; ``--postgres`` also on a fresh database created on that
PostgreSQL server (default postgresql+psycopg://root@127.0.0.1:5432/postgres) and dropped afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.engine import make_url

import migrations
from bench.common import machine
from dynamics import SimulationRequest
from core import Settings, make_engine
from models import Run, RunStatus
from models.runs import run_row
from models.sweeps import create_sweep
from core.jobs import ensure_broker_folders
from models.tables import RunSummary
from service.main import create_app

DYNAMICS = ["gd", "self_consistent"]
POSTGRES_SERVER = "postgresql+psycopg://root@127.0.0.1:5432/postgres"


def summaries(run_id: uuid.UUID, rng: random.Random) -> list[dict[str, Any]]:
    return [{"run_id": run_id, "dynamics": name, "position": i, "min_test_error": rng.random(),
             "min_test_error_step": rng.randrange(1000), "stable_rank_at_min": 1 + 4 * rng.random(),
             "rank_at_min": rng.randrange(1, 20), "final_train_error": rng.random() * 1e-3,
             "final_test_error": rng.random(), "steps_run": 750, "stop_reason": "plateau", "diverged_step": None}
            for i, name in enumerate(DYNAMICS)]


def finish(session: Any, ids: list[uuid.UUID], rng: random.Random) -> None:
    """Mark ``ids`` succeeded, with summaries and a GD/self-consistent distance."""
    rows = [s for rid in ids for s in summaries(rid, rng)]
    for i in range(0, len(rows), 2000):
        session.execute(insert(RunSummary), rows[i : i + 2000])
    session.execute(update(Run).where(Run.id.in_(ids)).values(
        status=RunStatus.succeeded.value, has_comparison=True, max_distance=0.01, log_max_distance=-4.6,
        progress_step=750, lr=0.01))  # fmt: skip


def fill(factory: Any, n_runs: int, grid: int) -> uuid.UUID:
    rng = random.Random(0)
    gs = [round(-2.2 + 1.4 * i / (grid - 1), 6) for i in range(grid)]
    gw = [round(1.5 + 1.0 * i / (grid - 1), 6) for i in range(grid)]
    base = {"d": 200, "rank": 5, "steps": 750, "stopping": "paper", "dynamics": DYNAMICS}
    requests = [SimulationRequest.model_validate({**base, "gamma_sigma2": a, "gamma_w": b})
                for a, b in itertools.product(gs, gw)]
    with factory() as session:
        sweep, ids = create_sweep(session, name="bench", base_request=base, axes={"gamma_sigma2": gs, "gamma_w": gw},
                                  requests=requests)
        finish(session, ids, rng)
        session.commit()
        others = n_runs - len(ids)
        for start in range(0, others, 2000):
            rows = [run_row(SimulationRequest.model_validate(
                {**base, "seed": start + i, "gamma_sigma2": rng.choice(gs), "gamma_w": rng.choice(gw)}))
                for i in range(min(2000, others - start))]
            for r in rows:
                r["name"] = f"run-{r['request']['seed']}"
            session.execute(insert(Run), rows)
            finish(session, [r["id"] for r in rows], rng)
            session.commit()
        return sweep.id


def page_cost(client: TestClient, urls: list[str], repeats: int = 7) -> tuple[float, float, int]:
    """(median wall seconds, median CPU seconds of this process, bytes) for all of ``urls`` one after the
    other. The CPU time (server and client share the process) holds on a loaded machine, where the wall
    time waits for other processes' turns too."""
    size = 0
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
        size += len(r.content)
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        for u in urls:
            client.get(u)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), size


@contextlib.contextmanager
def fresh_postgres(server_url: str) -> Iterator[str]:
    """An empty database created on the PostgreSQL server at ``server_url``, dropped afterwards; its URL."""
    admin_url = make_url(server_url)
    name = f"lindyn_bench_dashboard_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure(db_url: str, n_runs: int, grid: int) -> None:
    """Fill the database at ``db_url`` (empty; "" for a SQLite file in a temporary folder) and print the pages'
    costs."""
    folder = Path(tempfile.mkdtemp(prefix="lindyn-bench-dashboard-"))
    settings = Settings(data_dir=folder / "data", database_url=db_url)
    migrations.upgrade(settings.db_url)
    ensure_broker_folders(settings)  # /health answers 200
    print(f"\ndatabase: {settings.db_url.split('://')[0]}  ({uptime()})", flush=True)
    from sqlalchemy.orm import sessionmaker

    engine = make_engine(settings.db_url)
    sweep_id = fill(sessionmaker(bind=engine), n_runs, grid)
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        floor = page_cost(client, ["/health"])
        static = {u: len(client.get(u).content) for u in
                  ["/ui/static/lindyn.js", "/ui/static/sweep.js", "/ui/static/runs.js", "/ui/static/style.css",
                   "/ui/vendor/plotly.min.js"]}
        sweep = page_cost(client, [f"/ui/sweeps/{sweep_id}", f"/v1/sweeps/{sweep_id}", f"/v1/sweeps/{sweep_id}/table"])
        sweep_table = page_cost(client, [f"/v1/sweeps/{sweep_id}/table"])
        first = client.get("/v1/runs?limit=50").json()
        runs = page_cost(client, ["/ui/runs", "/v1/runs?limit=50"])
        more = {
            "next page (cursor)": page_cost(client, [f"/v1/runs?limit=50&cursor={first['next_cursor']}"]),
            "sorted by GD's min test error": page_cost(client, ["/v1/runs?limit=50&sort=min_test_error&dynamics=gd"]),
            "filtered on gamma_w and GD's min test error":
                page_cost(client, ["/v1/runs?limit=50&gamma_w_min=2&min_test_error_max=0.5&dynamics=gd"]),
            "the sweep's runs (sweep_id=)": page_cost(client, [f"/v1/runs?limit=50&sweep_id={sweep_id}"]),
        }

    def ms(cost: tuple[float, float, int]) -> str:
        return f"{cost[0] * 1e3:.1f} ms wall, {cost[1] * 1e3:.1f} ms CPU ({cost[1] / floor[1]:.1f} x /health)"

    print(f"reference GET /health: {floor[0] * 1e3:.1f} ms wall, {floor[1] * 1e3:.1f} ms CPU")
    print(f"sweep page, {grid} x {grid} = {grid**2} runs (HTML + sweep + table): {ms(sweep)}, "
          f"{sweep[2] / 1e3:.0f} kB (goals: < 200 ms, < 1 MB)")
    print(f"  of which GET /v1/sweeps/{{id}}/table: {ms(sweep_table)}, {sweep_table[2] / 1e3:.0f} kB")
    print(f"runs page, {first['total']} runs in the database (HTML + first page of 50): {ms(runs)}, "
          f"{runs[2] / 1e3:.0f} kB (goal: < 100 ms a page)")
    for what, cost in more.items():
        print(f"  {what}: {ms(cost)}")
    print("static, cached by the browser: " + ", ".join(f"{u.rsplit('/', 1)[1]} {b / 1e3:.0f} kB" for u, b in static.items()))
    print(f"({uptime()})", flush=True)


def uptime() -> str:
    """The load average now (the machine is shared: wall times wait for other processes' turns)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--grid", type=int, default=30)
    ap.add_argument("--db-url", default=None, help="an empty database (default: a SQLite file in a temp folder)")
    ap.add_argument("--postgres", nargs="?", const=POSTGRES_SERVER, default=None, metavar="SERVER_URL",
                    help=f"also measure on a fresh database of this PostgreSQL server (default {POSTGRES_SERVER})")
    args = ap.parse_args()
    print(f"machine: {machine()}", flush=True)
    measure(args.db_url or "", args.runs, args.grid)
    if args.postgres:
        with fresh_postgres(args.postgres) as url:
            measure(url, args.runs, args.grid)


if __name__ == "__main__":
    main()

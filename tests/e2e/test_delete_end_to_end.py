"""Deleting runs and sweeps, cancelling a sweep and the float filters, through the CLI and the client against
real processes: an API and a Celery worker on PostgreSQL and a Redis server of the test's own, and the
embedded default (`lindyn serve`: SQLite, filesystem broker). A run deleted while its worker runs it stops,
and the worker writes nothing under its id (counted in the database itself)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from lindyn import Client
from models import RunSummary, TrajectoryPoint
from tests.e2e.conftest import LINDYN, Api, Processes, clean_env, start_api, start_serve, start_worker, wait_for
from tests.own_redis import RedisServer, own_redis  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e

SMALL = {"d": 8, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 10}
#: minutes if left to run; progress every 80 steps
LONG = {"d": 32, "rank": 3, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 8000, "record_every": 100,
        "spectrum_every": 0, "dynamics": ["gd", "self_consistent"]}  # fmt: skip


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LINDYN, *args], env=env, capture_output=True, text=True, timeout=120)


def rows_of(db_url: str, run_id: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return sum(int(conn.scalar(select(func.count()).select_from(t).where(t.run_id == uuid.UUID(run_id))) or 0)
                       for t in (TrajectoryPoint, RunSummary))  # fmt: skip
    finally:
        engine.dispose()


def scenario(api: Api, env: dict[str, str], db_url: str) -> None:
    url = str(api.http.base_url).rstrip("/")
    env = {**env, "LINDYN_SERVER": url}
    client = Client(url)

    # a running run deleted from the CLI: gone, and its worker writes nothing more
    long = client.submit(LONG)
    wait_for(lambda: client.run(long.id).data["progress"]["step"] > 0, 90, "the long run to progress")
    done = cli(env, "runs", "delete", long.id)
    assert done.returncode == 0 and f"{long.id} deleted" in done.stdout, done.stderr
    assert api.http.get(f"/v1/runs/{long.id}").status_code == 404
    small = client.submit(SMALL)  # the worker is free again: the long batch stopped at a progress report
    assert small.wait(progress=False, timeout=90).status == "succeeded"
    assert rows_of(db_url, long.id) == 0 and rows_of(db_url, small.id) > 0
    again = cli(env, "runs", "delete", long.id)
    assert again.returncode == 1 and "not found" in again.stderr

    # a sweep over a linspace: its points found by the value a person types, then cancelled and deleted
    sweep = client.sweep({**LONG, "steps": 8001}, {"gamma_sigma2": (-2.2, -0.8, 15)}, name="to delete")
    found = cli(env, "runs", "--sweep", sweep.id, "--where", "gamma_sigma2=-1.3", "--json")
    assert found.returncode == 0, found.stderr
    assert [r["gamma_sigma2"] for r in json.loads(found.stdout)] == [-1.3]
    cancelled = cli(env, "sweep", "cancel", sweep.id, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
    assert cli(env, "sweep", "cancel", sweep.id).returncode == 1  # nothing left to cancel: the API's 409
    point = client.get_sweep(sweep.id).table()["run_id"][0]
    refused = cli(env, "runs", "delete", point)
    assert refused.returncode == 1 and "delete the sweep" in refused.stderr
    deleted = cli(env, "sweep", "delete", sweep.id)
    assert deleted.returncode == 0, deleted.stderr
    assert api.http.get(f"/v1/sweeps/{sweep.id}").status_code == 404
    assert api.http.get(f"/v1/runs/{point}").status_code == 404 and rows_of(db_url, point) == 0

    # the client: run.delete(), sweep.delete()
    one = client.submit({**SMALL, "seed": 7})
    one.wait(progress=False, timeout=90)
    one.delete()
    small_sweep = client.sweep(SMALL, {"seed": [1, 2]})
    small_sweep.wait(progress=False, timeout=90)
    small_sweep.delete()
    assert api.http.get(f"/v1/runs/{one.id}").status_code == 404
    assert api.http.get(f"/v1/sweeps/{small_sweep.id}").status_code == 404
    assert api.http.get("/v1/runs", params={"status": "running"}).json()["items"] == []


@pytest.mark.postgres
@pytest.mark.redis
def test_delete_on_postgres_redis(
    postgres_url: str, own_redis: RedisServer, processes: Processes, tmp_path: Path  # noqa: F811
) -> None:
    env = clean_env(LINDYN_DATABASE_URL=postgres_url, LINDYN_BROKER_URL=own_redis.url,
                    LINDYN_DATA_DIR=str(tmp_path / "data"), LINDYN_PROGRESS_INTERVAL_S="0")  # fmt: skip
    migrate = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    start_worker(processes, "worker-cpu", env, concurrency=1)
    api = start_api(processes, env)
    scenario(api, env, postgres_url)


def test_delete_on_the_embedded_default(processes: Processes, tmp_path: Path) -> None:
    """`lindyn serve --port 0`, which prints the port it got, with nothing configured."""
    env = clean_env(LINDYN_DATA_DIR=str(tmp_path / "data"), LINDYN_PROGRESS_INTERVAL_S="0",
                    LINDYN_WORKER_PROCESSES="1")  # fmt: skip
    api, _ = start_serve(processes, env)
    url = str(api.http.base_url).rstrip("/")
    assert f"API: {url}  docs: {url}/docs" in processes.log("serve")
    scenario(api, env, f"sqlite:///{tmp_path / 'data' / 'lindyn.db'}")

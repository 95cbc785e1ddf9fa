"""End to end with real processes: an API (uvicorn) and a Celery worker, on PostgreSQL + Redis and on the
embedded default (SQLite + filesystem broker, one `lindyn serve`). What comes back over HTTP equals what
dynamics returns for the same request called directly."""

from __future__ import annotations

import importlib.util
import io
import os
import signal
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dynamics import SimulationRequest, simulate
from tests.own_redis import RedisServer, own_redis  # noqa: F401 - a fixture
from tests.e2e.conftest import (
    LINDYN, Api, Processes, alive, children_of, clean_env, start_api, start_serve, start_worker, wait_for,
)  # fmt: skip

pytestmark = pytest.mark.e2e

REQUESTS = [
    {"d": 16, "rank": 3, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 40, "dynamics": ["gd", "self_consistent"]},
    {"d": 12, "rank": 2, "sigma2": 0.01, "width": 10, "steps": 30, "dynamics": ["gd", "lazy", "balanced"],
     "gd_update": "sequential", "stopping": "paper", "seed": 3},
    {"d": 8, "rank": 2, "gamma_sigma2": -1.0, "gamma_w": 2.0, "steps": 50, "lr": 5.0},  # diverges
]


def submit_and_compare(api: Api) -> None:
    ids = []
    for body in REQUESTS:
        r = api.http.post("/v1/runs", json=body)
        assert r.status_code == 202, r.text
        assert r.headers["location"] == f"/v1/runs/{r.json()['id']}"
        ids.append(r.json()["id"])
    for body, rid in zip(REQUESTS, ids):
        run = api.wait_finished(rid)
        expected = simulate(SimulationRequest.model_validate(body))
        assert run["status"] == ("diverged" if expected.diverged else "succeeded"), run
        assert run["attempts"] == 1 and run["error"] is None, run
        assert run["backend"] == expected.backend == "numpy" and run["device"] == expected.device
        assert run["summaries"] == {k: v.as_dict() for k, v in expected.summaries.items()}
        assert run["comparison"] == (expected.comparison.as_dict() if expected.comparison else None)
        assert run["regime"] == expected.regime and run["lr"] == expected.lr
        assert api.http.get(f"/v1/runs/{rid}/trajectory").json() == expected.trajectory_columns()
        parquet = api.http.get(f"/v1/runs/{rid}/trajectory", params={"format": "parquet"})
        assert pq.read_table(io.BytesIO(parquet.content)).to_pydict() == expected.trajectory_columns()
        # the same request again: the stored run, not a new one
        again = api.http.post("/v1/runs", json=body)
        assert again.status_code == 200 and again.json() == {"id": rid, "status": run["status"]}
    listed = api.http.get("/v1/runs", params={"limit": 100}).json()
    assert set(ids) <= {r["id"] for r in listed["items"]} and listed["total"] == len(listed["items"])


def cancel_while_running(api: Api) -> None:
    """A long run cancelled while it runs stops at its next progress report and frees the worker."""
    long = {"d": 64, "rank": 3, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 100_000, "record_every": 1000,
            "spectrum_every": 0, "dynamics": ["gd", "self_consistent"]}  # about a minute if left to run
    rid = api.http.post("/v1/runs", json=long).json()["id"]
    wait_for(lambda: api.http.get(f"/v1/runs/{rid}").json()["progress"]["step"] > 0, 60, "the long run to progress")
    cancelled = api.http.post(f"/v1/runs/{rid}/cancel").json()
    assert cancelled["status"] == "cancelled", cancelled
    small = api.http.post("/v1/runs", json={**REQUESTS[0], "seed": 99}).json()["id"]
    small_run = api.wait_finished(small, timeout=30)  # the single worker process is free again
    assert small_run["status"] == "succeeded", small_run
    run = api.http.get(f"/v1/runs/{rid}").json()
    assert run["status"] == "cancelled" and run["summaries"] == {}, run
    assert 0 < run["progress"]["step"] < 100_000, run


@pytest.mark.postgres
@pytest.mark.redis
def test_postgres_redis_api_and_worker(
    postgres_url: str, own_redis: RedisServer, processes: Processes, tmp_path: Path
) -> None:
    # a redis-server of this test's own: the machine's Redis is shared by concurrent test sessions, whose
    # workers would take (and skip) this test's runs from a shared database number
    env = clean_env(
        LINDYN_DATABASE_URL=postgres_url,
        LINDYN_BROKER_URL=own_redis.url,
        LINDYN_DATA_DIR=str(tmp_path / "data"),
        LINDYN_PROGRESS_INTERVAL_S="0",
    )
    migrate = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    start_worker(processes, "worker-cpu", env, concurrency=2)
    api = start_api(processes, env)
    health = api.http.get("/health").json()
    assert health["database"]["detail"] == "postgresql" and health["broker"]["detail"] == "redis"
    gpu_run = api.http.post("/v1/runs", json={**REQUESTS[0], "seed": 7, "backend": "cupy"}).json()["id"]
    submit_and_compare(api)
    cancel_while_running(api)
    # the CuPy request went to the gpu queue, which no worker consumed so far
    assert api.http.get(f"/v1/runs/{gpu_run}").json()["status"] == "queued"
    processes.start("worker-gpu", [*LINDYN, "worker", "--queues", "gpu", "--concurrency", "1"], env)
    run = api.wait_finished(gpu_run, timeout=60)
    if importlib.util.find_spec("cupy") is None:  # no CuPy here: the run fails and says why
        assert run["status"] == "failed" and "BackendUnavailable" in run["error"], run
    else:
        assert run["status"] == "succeeded" and run["backend"] == "cupy", run


def test_embedded_serve(processes: Processes, tmp_path: Path) -> None:
    """`lindyn serve` with nothing configured: SQLite file + filesystem broker under LINDYN_DATA_DIR."""
    data = tmp_path / "data"
    env = clean_env(LINDYN_DATA_DIR=str(data), LINDYN_PROGRESS_INTERVAL_S="0.2")
    api, serve = start_serve(processes, env)
    # started with --port 0, it prints the port the system gave (the one uvicorn listens on), and the dashboard
    base = str(api.http.base_url).rstrip("/")
    assert f"lindyn dashboard: {base}/ui  API: {base}  docs: {base}/docs" in processes.log("serve")
    assert not base.endswith(":0")
    page = api.http.get(f"{base}/ui", follow_redirects=True)
    assert page.status_code == 200 and str(page.url) == f"{base}/ui/runs" and "<html" in page.text
    health = api.http.get("/health").json()
    assert health["database"]["detail"] == "sqlite" and health["broker"]["detail"] == "filesystem"
    assert (data / "lindyn.db").exists() and (data / "broker" / "queue").is_dir()
    submit_and_compare(api)
    cancel_while_running(api)

    # SIGTERM to serve alone (not its group): it stops its worker before it exits
    workers = children_of(serve.pid)
    assert workers, "serve started no worker"
    os.kill(serve.pid, signal.SIGTERM)
    assert serve.wait(30) == 143, processes.log("serve")[-3000:]
    wait_for(lambda: not any(alive(p) for p in workers), 20, "the embedded worker to exit")


def test_serve_with_two_api_processes(processes: Processes, tmp_path: Path) -> None:
    """`lindyn serve --api-processes 2`: two uvicorn workers share the port beside the Celery worker, a run
    submitted through them finishes, and SIGTERM to serve stops every one of them."""
    env = clean_env(LINDYN_DATA_DIR=str(tmp_path / "data"), LINDYN_PROGRESS_INTERVAL_S="0.2")
    api, serve = start_serve(processes, env, "--api-processes", "2")

    def cmdline(pid: int) -> bytes:
        return Path(f"/proc/{pid}/cmdline").read_bytes()

    children = children_of(serve.pid)
    assert sum(b"spawn_main" in cmdline(p) for p in children) == 2, [cmdline(p) for p in children]
    body = {"d": 8, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 15, "dynamics": ["gd"]}
    run_id = api.http.post("/v1/runs", json=body).json()["id"]
    run = api.wait_finished(run_id, timeout=60)
    assert run["status"] == "succeeded", run
    expected = simulate(SimulationRequest.model_validate(body)).trajectory_columns()
    for _ in range(4):  # answered by either process alike
        assert api.http.get(f"/v1/runs/{run_id}/trajectory").json() == expected

    os.kill(serve.pid, signal.SIGTERM)
    serve.wait(30)
    wait_for(lambda: not any(alive(p) for p in children), 20, "the API processes and the worker to exit")

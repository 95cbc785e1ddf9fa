"""Sweeps end to end with real processes (an API and a Celery worker on PostgreSQL and a Redis server of the
test's own): a 3 x 3 grid
runs to the end in chunked batch tasks and its table equals running each grid point alone; cancelling a
sweep half-way keeps what finished and cancels the rest. And a small grid on the embedded default."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from dynamics import SimulationRequest, simulate
from tests.e2e.conftest import LINDYN, Api, Processes, clean_env, start_api, start_serve, start_worker, wait_for
from tests.own_redis import RedisServer, own_redis  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e

BASE = {"d": 12, "rank": 2, "steps": 60, "stopping": "paper", "dynamics": ["gd", "self_consistent"]}
AXES = {"gamma_sigma2": {"linspace": [-2.0, -1.0, 3]}, "gamma_w": {"values": [1.0, 1.5, 2.0]}}
GRID = [(g, w) for g in (-2.0, -1.5, -1.0) for w in (1.0, 1.5, 2.0)]
LONG = {"d": 32, "rank": 3, "gamma_sigma2": -1.5, "gamma_w": 2.0, "record_every": 100, "spectrum_every": 0,
        "dynamics": ["gd", "self_consistent"]}  # 8000 steps: 10 to 30 s if left to run, progress every 80 steps


def close(value: Any) -> Any:
    """A batch equals each point alone to round-off (batched BLAS may block the matmuls differently)."""
    return pytest.approx(value, rel=1e-9) if isinstance(value, float) else value


def wait_sweep(api: Api, sweep_id: str, timeout: float = 120) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        api.procs.assert_running()
        sweep = api.http.get(f"/v1/sweeps/{sweep_id}").json()
        return sweep if sweep["status"] in ("finished", "cancelled") else None

    return wait_for(finished, timeout, f"sweep {sweep_id} to finish", interval=0.25)


def run_grid_to_the_end(api: Api, chunk_size: int = 4) -> None:
    body = {"base": BASE, "axes": AXES, "name": "e2e 3x3", "chunk_size": chunk_size}
    r = api.http.post("/v1/sweeps", json=body)
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["total"] == 9 and r.headers["location"] == f"/v1/sweeps/{created['id']}"
    # 3 dense points (w = 12) and 6 reduced ones (2d wide), each group cut into chunks
    assert created["tasks"] == -(-3 // chunk_size) + -(-6 // chunk_size)
    sweep = wait_sweep(api, created["id"])
    assert sweep["status"] == "finished" and sweep["counts"]["succeeded"] == 9, sweep
    assert sweep["progress"] == {"finished": 9, "total": 9, "fraction": 1.0}
    assert sweep["wall_s"] > 0 and sweep["started_at"] and sweep["finished_at"]

    table = api.http.get(f"/v1/sweeps/{created['id']}/table").json()
    assert len(table["run_id"]) == 9 and table["status"] == ["succeeded"] * 9
    assert list(zip(table["gamma_sigma2"], table["gamma_w"], strict=True)) == GRID
    for i, (g, w) in enumerate(GRID):
        expected = simulate(SimulationRequest.model_validate({**BASE, "gamma_sigma2": g, "gamma_w": w}))
        for name, summary in expected.summaries.items():
            for metric, value in summary.as_dict().items():
                assert table[f"{name}.{metric}"][i] == close(value), (g, w, name, metric, table)
        assert expected.comparison is not None
        assert table["log_max_distance"][i] == close(expected.comparison.as_dict()["log_max_distance"])
        run = api.http.get(f"/v1/runs/{table['run_id'][i]}").json()
        assert run["sweep_id"] == created["id"] and run["attempts"] == 1 and run["error"] is None, run
        assert 1 <= run["timings"]["batch_size"] <= chunk_size, run["timings"]
        traj = api.http.get(f"/v1/runs/{run['id']}/trajectory").json()
        assert traj["step"] == expected.trajectory_columns()["step"]
    parquet = api.http.get(f"/v1/sweeps/{created['id']}/table", params={"format": "parquet"})
    assert pq.read_table(io.BytesIO(parquet.content)).to_pydict() == table
    listed = api.http.get("/v1/sweeps").json()
    assert created["id"] in {s["id"] for s in listed["items"]}


def cancel_half_way(api: Api) -> None:
    """One task per point: the short point finishes, the long ones are cancelled while they run."""
    body = {"base": LONG, "axes": {"steps": {"values": [20, 8000, 8001]}}, "chunk_size": 1}
    created = api.http.post("/v1/sweeps", json=body).json()
    sid = created["id"]
    assert created["tasks"] == 3

    def short_done_long_running() -> bool:
        table = api.http.get(f"/v1/sweeps/{sid}/table").json()
        runs = [api.http.get(f"/v1/runs/{rid}").json() for rid in table["run_id"]]
        return runs[0]["status"] == "succeeded" and any(r["progress"]["step"] > 0 for r in runs[1:])

    wait_for(short_done_long_running, 60, "the short point to finish and a long one to progress")
    r = api.http.post(f"/v1/sweeps/{sid}/cancel")
    assert r.status_code == 200, r.text
    sweep = r.json()
    assert sweep["status"] == "cancelled" and sweep["counts"]["succeeded"] == 1 and sweep["counts"]["cancelled"] == 2
    assert api.http.post(f"/v1/sweeps/{sid}/cancel").status_code == 409
    # both worker processes are free again: the long batches stopped at their next progress report
    small = [api.http.post("/v1/runs", json={**BASE, "gamma_sigma2": -1.5, "gamma_w": 2.0, "seed": s}).json()["id"]
             for s in (101, 102)]
    for rid in small:
        assert api.wait_finished(rid, timeout=30)["status"] == "succeeded"
    table = api.http.get(f"/v1/sweeps/{sid}/table").json()
    assert table["steps"] == [20, 8000, 8001] and table["status"] == ["succeeded", "cancelled", "cancelled"]
    expected = simulate(SimulationRequest.model_validate({**LONG, "steps": 20}))
    assert table["gd.min_test_error"][0] == close(expected.summaries["gd"].min_test_error)
    assert table["gd.min_test_error"][1:] == [None, None] and table["log_max_distance"][1:] == [None, None]
    for rid in table["run_id"][1:]:
        run = api.http.get(f"/v1/runs/{rid}").json()
        assert run["summaries"] == {} and 0 <= run["progress"]["step"] < 8000, run


@pytest.mark.postgres
@pytest.mark.redis
def test_sweeps_on_postgres_redis(
    postgres_url: str, own_redis: RedisServer, processes: Processes, tmp_path: Path  # noqa: F811
) -> None:
    env = clean_env(
        LINDYN_DATABASE_URL=postgres_url,
        LINDYN_BROKER_URL=own_redis.url,
        LINDYN_DATA_DIR=str(tmp_path / "data"),
        LINDYN_PROGRESS_INTERVAL_S="0",
        LINDYN_SWEEP_CHUNK_SIZE="4",
    )
    migrate = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    start_worker(processes, "worker-cpu", env, concurrency=2)
    api = start_api(processes, env)
    run_grid_to_the_end(api)
    cancel_half_way(api)


def test_sweeps_on_the_embedded_default(processes: Processes, tmp_path: Path) -> None:
    """`lindyn serve` with nothing configured (SQLite file + filesystem broker): the same grid, in chunks of 6."""
    env = clean_env(LINDYN_DATA_DIR=str(tmp_path / "data"), LINDYN_PROGRESS_INTERVAL_S="0.2")
    api, _ = start_serve(processes, env)
    run_grid_to_the_end(api, chunk_size=6)

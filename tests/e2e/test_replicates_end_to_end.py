"""Replicates end to end (issue #15 item 2), with real processes on PostgreSQL + a Redis server of the test's
own and on the embedded default (`lindyn serve`): a sweep over gamma_sigma2 x d x seed submitted with the CLI,
aggregated over seed and sliced at d through HTTP, the Python client and the CLI; every mean, sd and n equals
Python's statistics over dynamics.simulate of each grid point run alone; the phase diagram sliced at d is a
line plot with error bars over gamma_sigma2, and a 422 names `at` for a value not on the axis."""

from __future__ import annotations

import json
import statistics
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from dynamics import SimulationRequest, simulate
from lindyn import Client
from tests.e2e.conftest import LINDYN, Api, Processes, clean_env, start_api, start_serve, start_worker, wait_for
from tests.own_redis import RedisServer, own_redis  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e

BASE = {"rank": 2, "gamma_w": 2.0, "steps": 30, "stopping": "paper", "dynamics": ["gd", "self_consistent"]}
GS, DS, SEEDS = (-2.0, -1.0), (8, 10), (0, 1, 2)


def cli(api: Api, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LINDYN, *args, "--server", str(api.http.base_url).rstrip("/")], capture_output=True,
                          text=True, timeout=180, env=clean_env())


def expected_statistics() -> dict[tuple[float, str], tuple[float, float, int]]:
    """(gamma_sigma2, metric) -> (mean, sd, n) over the seeds at d = 10, each point simulated alone."""
    out = {}
    for g in GS:
        results = [simulate(SimulationRequest.model_validate({**BASE, "d": 10, "gamma_sigma2": g, "seed": s}))
                   for s in SEEDS]
        for metric in ("min_test_error", "stable_rank_at_min", "final_test_error"):
            values = [getattr(r.summaries["gd"], metric) for r in results]
            out[(g, f"gd.{metric}")] = (statistics.fmean(values), statistics.stdev(values), len(values))
        values = [r.comparison.log_max_distance for r in results if r.comparison is not None]
        out[(g, "log_max_distance")] = (statistics.fmean(values), statistics.stdev(values), len(values))
    return out


def replicates_through_every_door(api: Api, tmp_path: Path) -> None:
    submitted = cli(api, "sweep", "--d", "8", "--rank", "2", "--gamma-w", "2.0", "--steps", "30",
                    "--stopping", "paper", "--dynamics", "gd,self_consistent",
                    "--axis", "gamma_sigma2=values:-2.0,-1.0", "--axis", "d=values:8,10",
                    "--axis", "seed=values:0,1,2", "--name", "replicates-e2e", "--json")
    assert submitted.returncode == 0, submitted.stderr
    sid = json.loads(submitted.stdout)["id"]

    def finished() -> dict[str, Any] | None:
        api.procs.assert_running()
        sweep = api.http.get(f"/v1/sweeps/{sid}").json()
        return sweep if sweep["status"] == "finished" else None

    sweep = wait_for(finished, 300, f"sweep {sid} to finish", interval=0.25)
    assert sweep["replicates"] == ["seed"] and sweep["counts"]["succeeded"] == 12

    # HTTP: one row per (gamma_sigma2) at d = 10, the statistics of the three seeds
    table = api.http.get(f"/v1/sweeps/{sid}/table", params={"aggregate": "seed", "at": "d:10"}).json()
    assert table["gamma_sigma2"] == list(GS) and table["d"] == [10, 10] and table["runs"] == [3, 3]
    # a stacked batch equals each point alone to round-off (batched BLAS may block the matmuls differently):
    # 1e-9 relative, as the sweeps' own end-to-end test; the sd of three values inherits about that
    for (g, column), (mean, sd, n) in expected_statistics().items():
        i = table["gamma_sigma2"].index(g)
        assert table[f"{column}.n"][i] == n
        assert table[f"{column}.mean"][i] == pytest.approx(mean, rel=1e-9), (g, column)
        assert table[f"{column}.sd"][i] == pytest.approx(sd, rel=1e-7, abs=1e-12), (g, column)

    # the Python client: the same table as a DataFrame
    with Client(str(api.http.base_url).rstrip("/")) as client:
        sw = client.get_sweep(sid)
        assert sw.replicates == ["seed"]
        frame = sw.table(aggregate="seed", at={"d": 10})
        assert frame["gd.min_test_error.mean"].tolist() == pytest.approx(table["gd.min_test_error.mean"], rel=1e-15)
        assert frame["gd.min_test_error.n"].tolist() == [3, 3]
        sw.phase_diagram(tmp_path / "client.svg", at="d:10")
    root = ET.parse(tmp_path / "client.svg").getroot()
    ids = {el.get("id") for el in root.iter()}
    assert "line-gd.min_test_error.mean" in ids and "error-bars-gd.min_test_error.mean" in ids

    # the CLI: the aggregated table as JSON records, and the phase diagram
    shown = cli(api, "table", sid, "--aggregate", "seed", "--at", "d:10", "--json")
    assert shown.returncode == 0, shown.stderr
    records = json.loads(shown.stdout)
    # pandas' to_json writes 10 significant digits
    assert [r["gd.min_test_error.mean"] for r in records] == pytest.approx(table["gd.min_test_error.mean"], rel=1e-9)
    out = tmp_path / "cli.svg"
    drawn = cli(api, "phase-diagram", sid, "--out", str(out), "--at", "d:10", "--metric", "figure2")
    assert drawn.returncode == 0, drawn.stderr
    assert "line-log_max_distance.mean" in out.read_text()
    heat = tmp_path / "heat.svg"  # averaged over seed and d: a heat map needs two axes; here one remains
    assert cli(api, "phase-diagram", sid, "--out", str(heat), "--aggregate", "seed,d", "--sd").returncode == 0
    assert "line-gd.min_test_error.mean" in heat.read_text()
    bad = cli(api, "phase-diagram", sid, "--out", str(tmp_path / "bad.png"), "--at", "d:9")
    assert bad.returncode == 2 and "at: 9 is not a value of axis d" in bad.stderr and not (tmp_path / "bad.png").exists()
    three = api.http.get(f"/v1/sweeps/{sid}/phase-diagram", params={"aggregate": ""})
    assert three.status_code == 422 and three.json()["detail"][0]["field"] == "at"


@pytest.mark.postgres
@pytest.mark.redis
def test_replicates_on_postgres_redis(
    postgres_url: str, own_redis: RedisServer, processes: Processes, tmp_path: Path  # noqa: F811
) -> None:
    env = clean_env(LINDYN_DATABASE_URL=postgres_url, LINDYN_BROKER_URL=own_redis.url,
                    LINDYN_DATA_DIR=str(tmp_path / "data"), LINDYN_PROGRESS_INTERVAL_S="0")
    migrate = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    start_worker(processes, "worker-cpu", env, concurrency=2)
    replicates_through_every_door(start_api(processes, env), tmp_path)


def test_replicates_on_the_embedded_default(processes: Processes, tmp_path: Path) -> None:
    env = clean_env(LINDYN_DATA_DIR=str(tmp_path / "data"), LINDYN_PROGRESS_INTERVAL_S="0.2")
    api, _ = start_serve(processes, env)
    replicates_through_every_door(api, tmp_path)

"""Adaptive refinement end to end with real processes: on the paper's axes at d = 20 (a coarse 5 x 5 grid, two
rounds, gd.min_test_error), through HTTP on PostgreSQL + Redis (two worker processes) and through the CLI and
the client on the embedded default (`lindyn serve`). The points each round added are exactly what the rule
(dynamics/refine.py) gives from the values the service stored, they equal the dynamics run alone, and most of
them lie near the active/lazy line gamma_sigma2 + gamma_w = 1."""

from __future__ import annotations

import itertools
import subprocess
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from core import Settings
from dynamics import SimulationRequest, simulate
from dynamics.refine import refine, round_budget
from lindyn import Client
from lindyn.cli import app
from tests.dynamics.test_refine import (
    NEAR,
    PAPER_AXES,
    PAPER_BASE,
    PAPER_BUDGET,
    PAPER_ROUNDS,
    distance_to_active_lazy_line,
    uniform_share_near_line,
)
from tests.e2e.conftest import LINDYN, Api, Processes, clean_env, start_api, start_serve, start_worker
from tests.e2e.test_sweeps_end_to_end import close, wait_sweep
from tests.own_redis import RedisServer, own_redis  # noqa: F401 - a fixture
from workers.tasks import execute_batch

pytestmark = pytest.mark.e2e

METRIC = "gd.min_test_error"
BODY = {"base": PAPER_BASE, "name": "refined paper axes",
        "axes": {"gamma_sigma2": {"linspace": [-3.0, 0.0, 5]}, "gamma_w": {"linspace": [0.5, 3.5, 5]}},
        "refine": {"metric": METRIC, "rounds": PAPER_ROUNDS, "budget": PAPER_BUDGET}}


def check_refined(sweep: dict[str, Any], table: dict[str, list[Any]]) -> float:
    """The sweep ran both rounds, each adding what the rule gives from the stored values; the share of the added
    points near the active/lazy line."""
    refined = sweep["refine"]
    assert sweep["status"] == "finished" and refined["state"] == "done" and refined["round"] == PAPER_ROUNDS, sweep
    n1, n2 = refined["points"][1:]
    assert refined["points"][0] == 25 and 0 < n1 + n2 <= PAPER_BUDGET and refined["added"] == n1 + n2
    assert sweep["total"] == 25 + n1 + n2 == len(table["run_id"]) == sweep["counts"]["succeeded"]
    values = {(g, w): v for g, w, v in zip(table["gamma_sigma2"], table["gamma_w"], table[METRIC], strict=True)}
    coarse = [PAPER_AXES["gamma_sigma2"], PAPER_AXES["gamma_w"]]
    grid = set(itertools.product(*coarse))
    assert grid <= set(values)
    # replay the rounds from the stored values: round 1 from the grid's, round 2 from those and round 1's
    first = refine(coarse, {p: values[p] for p in grid}, round_budget(PAPER_BUDGET, 0, PAPER_ROUNDS))
    assert len(first) == n1 and set(first) <= set(values)
    second = refine(coarse, {p: values[p] for p in grid | set(first)}, round_budget(PAPER_BUDGET, n1, PAPER_ROUNDS - 1))
    assert len(second) == n2 and set(values) == grid | set(first) | set(second)
    # a refined point is a run like any other: its summary is the dynamics run alone
    g, w = second[0]
    expected = simulate(SimulationRequest.model_validate({**PAPER_BASE, "gamma_sigma2": g, "gamma_w": w}))
    assert values[(g, w)] == close(expected.summaries["gd"].min_test_error)
    return float(np.mean(distance_to_active_lazy_line([*first, *second]) <= NEAR))


def refine_through_http(api: Api) -> None:
    r = api.http.post("/v1/sweeps", json=BODY)
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    sweep = wait_sweep(api, sid, timeout=180)
    table = api.http.get(f"/v1/sweeps/{sid}/table").json()
    share = check_refined(sweep, table)
    # measured: 0.76 of the added points within half a coarse cell's diagonal of the line (even spread: 0.41)
    assert share >= 0.65 and share >= 1.5 * uniform_share_near_line(), share
    png = api.http.get(f"/v1/sweeps/{sid}/phase-diagram", params={"metric": METRIC})
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    bad = api.http.post("/v1/sweeps", json={**BODY, "refine": {**BODY["refine"], "metric": "gd.colour"}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "refine", "metric"]


@pytest.mark.postgres
@pytest.mark.redis
def test_refinement_on_postgres_redis(
    postgres_url: str, own_redis: RedisServer, processes: Processes, tmp_path: Path  # noqa: F811
) -> None:
    env = clean_env(LINDYN_DATABASE_URL=postgres_url, LINDYN_BROKER_URL=own_redis.url,
                    LINDYN_DATA_DIR=str(tmp_path / "data"), LINDYN_SWEEP_CHUNK_SIZE="8")
    migrate = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    start_worker(processes, "worker-cpu", env, concurrency=2)
    refine_through_http(start_api(processes, env))


def test_refinement_on_the_embedded_default_through_the_cli_and_the_client(processes: Processes,
                                                                           tmp_path: Path) -> None:
    api, _ = start_serve(processes, clean_env(LINDYN_DATA_DIR=str(tmp_path / "data")))
    server = str(api.http.base_url).rstrip("/")
    runner = CliRunner()
    flags = ["--d", "20", "--rank", "2", "--steps", "2000", "--stopping", "paper", "--dynamics", "gd",
             "--spectrum-every", "0", "--axis", "gamma_sigma2=linspace:-3:0:5", "--axis", "gamma_w=linspace:0.5:3.5:5",
             "--server", server]  # fmt: skip
    r = runner.invoke(app, ["sweep", *flags, "--refine-metric", METRIC, "--refine-rounds", str(PAPER_ROUNDS),
                            "--refine-budget", str(PAPER_BUDGET), "--wait", "--no-progress"])
    assert r.exit_code == 0, r.output
    first = r.stdout.splitlines()[0].split()
    assert first[0] == "sweep" and first[2] == "finished", r.stdout
    assert f"refine {METRIC}: round {PAPER_ROUNDS} of {PAPER_ROUNDS} (done), points per round [25, " in r.stdout
    with Client(server) as client:
        found = client.get_sweep(first[1])
        sweep, table = found.data, found.table()
        dataset = found.dataset()
    check_refined(sweep, {c: list(table[c]) for c in table.columns})
    # as an xarray Dataset: on the refined mesh (each axis's values, sorted), NaN at its nodes that are not points
    assert dataset["gamma_sigma2"].values.tolist() == sorted(set(table["gamma_sigma2"]))
    values = dataset["min_test_error"].sel(dynamics="gd").values
    assert int(np.isfinite(values).sum()) == len(table)
    for g, w, v in zip(table["gamma_sigma2"], table["gamma_w"], table[METRIC], strict=True):
        assert dataset["min_test_error"].sel(gamma_sigma2=g, gamma_w=w, dynamics="gd").item() == v
    r = runner.invoke(app, ["sweep", *flags, "--refine-metric", "gd.colour", "--refine-budget", "5"])
    assert r.exit_code == 2 and "metric: 'gd.colour' is not a summary metric" in r.output, r.output
    r = runner.invoke(app, ["sweep", *flags, "--refine-rounds", "2"])
    assert r.exit_code == 2 and "--refine-metric" in r.output, r.output
    # the client: the same request, the same points (a sweep's runs are not reused: every point runs again)
    with Client(server) as client:
        again = client.sweep(PAPER_BASE, {"gamma_sigma2": (-3.0, 0.0, 5), "gamma_w": (0.5, 3.5, 5)},
                             refine=BODY["refine"]).wait(progress=False, timeout=180)
        table2 = again.table()
    assert again.data["refine"]["points"] == sweep["refine"]["points"]
    assert sorted(zip(table2["gamma_sigma2"], table2["gamma_w"])) == sorted(zip(table["gamma_sigma2"],
                                                                                  table["gamma_w"]))


@pytest.mark.postgres
@pytest.mark.redis
def test_a_round_lost_with_its_worker_is_started_by_the_reaper(
    postgres_url: str, own_redis: RedisServer, processes: Processes, tmp_path: Path  # noqa: F811
) -> None:
    """The grid's runs stored by a worker that died before starting round 1 (here: this process stores them and
    starts nothing); a worker started afterwards finds the round in its reaper's first pass and runs the rest."""
    env = clean_env(LINDYN_DATABASE_URL=postgres_url, LINDYN_BROKER_URL=own_redis.url,
                    LINDYN_DATA_DIR=str(tmp_path / "data"))
    migrate = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    api = start_api(processes, env)
    body = {"base": {"d": 12, "rank": 2, "steps": 30, "stopping": "paper", "dynamics": ["gd"]},
            "axes": {"gamma_sigma2": {"values": [-2.0, -1.0, 0.0]}, "gamma_w": {"values": [0.5, 1.5, 2.5]}},
            "refine": {"metric": METRIC, "rounds": 1, "budget": 6}}
    sid = api.http.post("/v1/sweeps", json=body).json()["id"]
    grid = api.http.get(f"/v1/sweeps/{sid}/table").json()["run_id"]
    settings = Settings(database_url=postgres_url, data_dir=tmp_path / "data")
    assert set(execute_batch([uuid.UUID(r) for r in grid], settings).values()) == {"succeeded"}
    sweep = api.http.get(f"/v1/sweeps/{sid}").json()
    assert sweep["status"] == "running" and sweep["refine"]["round"] == 0  # every run finished, no round started
    start_worker(processes, "worker-cpu", env)
    sweep = wait_sweep(api, sid, timeout=120)
    assert sweep["status"] == "finished" and sweep["refine"]["round"] == 1 and sweep["refine"]["state"] == "done"
    added = sweep["refine"]["points"][1]
    assert 0 < added <= 6 and sweep["total"] == 9 + added == sweep["counts"]["succeeded"]

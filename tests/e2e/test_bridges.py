"""The bridges against the real running service (an API and a Celery worker on PostgreSQL and a Redis server
of this module's own): a sweep as an xarray Dataset and as NetCDF, its trajectories in one request; runs and
a sweep exported to a real ``mlflow server`` (SQLite backend store, local artifact root, 127.0.0.1) with
``lindyn export mlflow`` and read back through MLflow's own client; the notebook views and what they fetch."""

from __future__ import annotations

import os
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import xarray as xr
from typer.testing import CliRunner

from lindyn import Client
from lindyn.cli import app
from tests.conftest import fresh_postgres_database, unavailable
from tests.e2e.conftest import Processes, clean_env, free_port, wait_for
from tests.e2e.test_lab_tools import _server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
BASE = {"d": 10, "rank": 2, "gamma_sigma2": -1.5, "steps": 20, "spectrum_every": 5,
        "dynamics": ["gd", "self_consistent"]}  # fmt: skip
AXES = {"gamma_w": [2.1, 1.8], "seed": [0, 1, 2]}
runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("bridges")
    with fresh_postgres_database() as db_url:
        yield from _server(folder, db_url)


class Counting(httpx.HTTPTransport):
    """A transport that keeps the path of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return super().handle_request(request)


@pytest.fixture
def client(server: str) -> Iterator[Client]:
    with Client(server, timeout=10, transport=Counting()) as c:
        yield c


@pytest.fixture(scope="module")
def sweep_id(server: str) -> str:
    """A finished 2 x 3 sweep (gamma_w in the sweep's own, unsorted order; seeds)."""
    with Client(server, timeout=10) as c:
        sweep = c.sweep(BASE, AXES, name="bridges", tags={"test": uuid.uuid4().hex})
        assert sweep.wait(progress=False, timeout=120).status == "finished"
        assert sweep.counts["succeeded"] == 6
        return sweep.id


# ---- xarray ----------------------------------------------------------------------------------------------
def test_sweep_dataset_and_trajectories(client: Client, sweep_id: str, tmp_path: Path) -> None:
    sweep = client.get_sweep(sweep_id)
    table = sweep.table()
    ds = sweep.dataset()
    assert dict(ds.sizes) == {"gamma_w": 2, "seed": 3, "dynamics": 2}
    assert ds["gamma_w"].values.tolist() == AXES["gamma_w"]
    assert ds["dynamics"].values.tolist() == ["gd", "self_consistent"]
    for _, row in table.iterrows():
        point = ds.sel(gamma_w=row["gamma_w"], seed=row["seed"])
        assert point["run_id"].item() == row["run_id"]
        for name in ("gd", "self_consistent"):
            for metric in ("min_test_error", "stable_rank_at_min", "min_test_error_step", "steps_run"):
                assert point[metric].sel(dynamics=name).item() == row[f"{name}.{metric}"]  # exact
        assert point["log_max_distance"].item() == row["log_max_distance"]
    assert ds.attrs["sweep_id"] == sweep_id and ds.attrs["name"] == "bridges"
    path = tmp_path / "sweep.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    xr.testing.assert_identical(xr.load_dataset(path, engine="h5netcdf"), ds)

    # every trajectory in one request, equal to each run's own, in grid order
    client.transport._http._transport.paths.clear()  # type: ignore[attr-defined]
    frame = sweep.trajectories()
    assert client.transport._http._transport.paths == [f"/v1/sweeps/{sweep_id}/trajectories"]  # type: ignore[attr-defined]
    own = [client.run(rid).trajectory().assign(run_id=rid) for rid in table["run_id"]]
    expected = pd.concat(own, ignore_index=True)[list(frame.columns)]
    pd.testing.assert_frame_equal(frame, expected)
    steps = sweep.trajectories(dataset=True)
    assert dict(steps.sizes)["step"] == frame["step"].nunique()
    first = table.iloc[0]
    got = steps["test_error"].sel(gamma_w=first["gamma_w"], seed=first["seed"], dynamics="gd")
    gd = own[0][own[0]["dynamics"] == "gd"]
    np.testing.assert_array_equal(got.sel(step=gd["step"].to_numpy()).values, gd["test_error"].to_numpy())


# ---- MLflow ----------------------------------------------------------------------------------------------
def mlflow_executable() -> str:
    """The ``mlflow`` command of the server: LINDYN_TEST_MLFLOW, else .venv-mlflow (``make mlflow-server``),
    else one on the PATH."""
    for candidate in (os.environ.get("LINDYN_TEST_MLFLOW"), str(ROOT / ".venv-mlflow" / "bin" / "mlflow"),
                      shutil.which("mlflow")):  # fmt: skip
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    unavailable("an mlflow server (make mlflow-server)", FileNotFoundError("no mlflow command"))
    raise AssertionError  # unreachable


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server``: SQLite backend store, artifacts served from a local folder, 127.0.0.1."""
    folder = tmp_path_factory.mktemp("mlflow")
    procs = Processes(folder)
    port = free_port()
    try:
        procs.start("mlflow", [mlflow_executable(), "server", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
                               "--artifacts-destination", str(folder / "artifacts")], clean_env())  # fmt: skip
        uri = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            procs.assert_running()
            return httpx.get(f"{uri}/health", timeout=5).status_code == 200

        wait_for(healthy, 180, "mlflow server /health = 200", interval=0.5)
        yield uri
    finally:
        procs.stop_all()


def _export(server: str, *args: str) -> Any:
    r = runner.invoke(app, ["export", "mlflow", *args, "--server", server, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_export_a_run_to_mlflow(client: Client, server: str, tracking_uri: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    run = client.submit({**BASE, "gamma_w": 2.0, "seed": 7}, name="to-mlflow", tags={"project": "bridges"})
    assert run.wait(progress=False, timeout=60).status == "succeeded"
    experiment = f"runs-{uuid.uuid4().hex[:8]}"
    ml = MlflowClient(tracking_uri)
    # an export interrupted before: a run with the tag, still RUNNING, is replaced
    exp_id = ml.create_experiment(experiment)
    stale = ml.create_run(exp_id, tags={"lindyn.run_id": run.id}).info.run_id

    report = _export(server, run.id, "--tracking-uri", tracking_uri, "--experiment", experiment)
    assert report["experiment_id"] == exp_id and list(report["logged"]) == [run.id] and not report["existing"]
    mid = report["logged"][run.id]
    assert ml.get_run(stale).info.lifecycle_stage == "deleted"
    got = ml.get_run(mid)
    assert got.info.status == "FINISHED" and got.info.run_name == "to-mlflow"
    request = run.data["request"]
    assert got.data.params == {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in request.items()}
    assert got.data.tags["project"] == "bridges" and got.data.tags["lindyn.run_id"] == run.id
    assert got.data.tags["lindyn.status"] == "succeeded"
    assert got.data.tags["gd.stop_reason"] == run.summary["gd"]["stop_reason"]
    for name, summary in run.summary.items():
        for metric, value in summary.items():
            if isinstance(value, (int, float)):
                assert got.data.metrics[f"{name}.{metric}"] == value, (name, metric)  # exact
    assert got.data.metrics["log_max_distance"] == run.data["comparison"]["log_max_distance"]
    # metric history: every recorded step
    trajectory = run.trajectory()
    for name in ("gd", "self_consistent"):
        rows = trajectory[trajectory["dynamics"] == name]
        history = ml.get_metric_history(mid, f"{name}.test_error")
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == list(
            zip(rows["step"].tolist(), rows["test_error"].tolist(), strict=True)
        )
    assert {a.path for a in ml.list_artifacts(mid)} == {"figure.png", "trajectory.parquet"}
    local = Path(ml.download_artifacts(mid, "trajectory.parquet", str(tmp_path)))
    pd.testing.assert_frame_equal(pq.read_table(local).to_pandas(), trajectory)
    png = Path(ml.download_artifacts(mid, "figure.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # idempotent: nothing logged twice
    again = _export(server, run.id, "--tracking-uri", tracking_uri, "--experiment", experiment)
    assert again["existing"] == {run.id: mid} and not again["logged"]
    assert len(ml.search_runs([exp_id])) == 1


def test_export_a_sweep_to_mlflow(client: Client, server: str, sweep_id: str, tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    experiment = f"sweeps-{uuid.uuid4().hex[:8]}"
    report = _export(server, "--sweep", sweep_id, "--tracking-uri", tracking_uri, "--experiment", experiment)
    ml = MlflowClient(tracking_uri)
    parent = ml.get_run(report["parent"])
    assert parent.info.run_name == "bridges" and parent.data.tags["lindyn.sweep_id"] == sweep_id
    assert parent.data.params["axis.gamma_w"] == "[2.1, 1.8]" and parent.data.params["d"] == "10"
    assert {a.path for a in ml.list_artifacts(parent.info.run_id)} == {"table.parquet"}
    table = client.get_sweep(sweep_id).table()
    assert sorted(report["logged"]) == sorted(table["run_id"]) and not report["skipped"]
    children = ml.search_runs([report["experiment_id"]],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert {c.data.tags["lindyn.run_id"] for c in children} == set(table["run_id"])
    for child in children:
        row = table[table["run_id"] == child.data.tags["lindyn.run_id"]].iloc[0]
        assert child.data.params["gamma_w"] == str(row["gamma_w"]) and child.data.params["seed"] == str(row["seed"])
        assert child.data.metrics["gd.min_test_error"] == row["gd.min_test_error"]
        assert child.data.tags["lindyn.sweep_id"] == sweep_id
        assert {a.path for a in ml.list_artifacts(child.info.run_id)} == {"figure.png", "trajectory.parquet"}
    one = children[0]
    rid = one.data.tags["lindyn.run_id"]
    traj = client.run(rid).trajectory()
    gd = traj[traj["dynamics"] == "gd"]
    history = sorted(ml.get_metric_history(one.info.run_id, "gd.train_error"), key=lambda m: m.step)
    assert [m.value for m in history] == gd["train_error"].tolist()

    # again: nothing new; a single run of the sweep exported on its own is found as well
    again = _export(server, "--sweep", sweep_id, "--tracking-uri", tracking_uri, "--experiment", experiment)
    assert again["parent"] == report["parent"] and not again["logged"] and len(again["existing"]) == 6
    alone = _export(server, rid, "--tracking-uri", tracking_uri, "--experiment", experiment)
    assert alone["existing"] == {rid: one.info.run_id}
    assert len(ml.search_runs([report["experiment_id"]])) == 7


def test_export_errors(server: str) -> None:
    r = runner.invoke(app, ["export", "mlflow", "--server", server, "--tracking-uri", "http://127.0.0.1:9"])
    assert r.exit_code == 2 and "RUN_ID or --sweep" in r.output
    r = runner.invoke(app, ["export", "mlflow", "x", "--server", server], env={"MLFLOW_TRACKING_URI": ""})
    assert r.exit_code == 2 and "--tracking-uri" in r.output


# ---- notebooks -------------------------------------------------------------------------------------------
def test_notebook_views_fetch_only_what_they_lack(client: Client, sweep_id: str) -> None:
    transport: Counting = client.transport._http._transport  # type: ignore[assignment]
    run_id = client.get_sweep(sweep_id).table()["run_id"].iloc[0]
    run = client.run(run_id)
    transport.paths.clear()
    page = run._repr_html_()
    assert transport.paths == [f"/v1/runs/{run_id}/figure"]  # the figure only: status and summaries are held
    assert "succeeded" in page and "min_test_error" in page and 'src="data:image/png;base64,' in page
    assert f"{run.summary['gd']['min_test_error']:.6g}" in page
    assert run._repr_html_() == page and len(transport.paths) == 1  # shown again: no request

    sweep = client.get_sweep(sweep_id)
    transport.paths.clear()
    page = sweep._repr_html_()
    assert transport.paths == [f"/v1/sweeps/{sweep_id}/table", f"/v1/sweeps/{sweep_id}/phase-diagram"]
    assert "finished" in page and "6/6 runs" in page and "gamma_w: 2.1, 1.8" in page and "<img" in page
    assert sweep._repr_html_() == page and len(transport.paths) == 2

    queued = client.submit({**BASE, "gamma_w": 2.0, "backend": "cupy", "seed": 99})  # no gpu worker: it stays queued
    transport.paths.clear()
    page = queued._repr_html_()
    assert transport.paths == [] and "queued" in page and "<img" not in page

"""The Python client and the CLI against the real running service: an API (uvicorn) and a Celery worker on
PostgreSQL and a Redis server of this module's own (so no other test run shares its queues). What comes
back equals dynamics.simulate of the same request; exports read back with pandas/pyarrow; filters, paging,
cancel; sweeps found by their tags; the CLI's output and exit codes."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import migrations
from dynamics import SimulationRequest, simulate
from lindyn import Client
from lindyn.cli import app
from lindyn.client import Conflict, NotFound, ServiceUnavailable, ValidationFailed
from tests.conftest import fresh_postgres_database, unavailable
from tests.e2e.conftest import LINDYN, Processes, clean_env, refused_port, start_api, start_worker, wait_for
from tests.own_redis import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

BODY = {"d": 12, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 30, "spectrum_every": 5,
        "dynamics": ["gd", "self_consistent"]}  # fmt: skip
LONG = {"d": 32, "rank": 3, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 100_000, "record_every": 200,
        "spectrum_every": 0, "dynamics": ["gd", "self_consistent"]}  # fmt: skip
#: a request that stays queued: the cupy backend goes to the gpu queue, which no worker here consumes
#: (a seed of its own: the backend is not part of a request's identity)
STAYS_QUEUED = {**BODY, "backend": "cupy", "seed": 77}
runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API and a worker (concurrency 2) on a fresh PostgreSQL database and a private redis-server."""
    folder = tmp_path_factory.mktemp("lab-tools")
    with fresh_postgres_database() as db_url:
        yield from _server(folder, db_url)


def _server(folder: Path, db_url: str) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server binary", FileNotFoundError("redis-server"))
    procs = Processes(folder)
    (folder / "redis").mkdir()
    redis = RedisServer(folder / "redis")
    try:
        redis.start()
        migrations.upgrade(db_url)
        env = clean_env(LINDYN_DATABASE_URL=db_url, LINDYN_BROKER_URL=redis.url,
                        LINDYN_DATA_DIR=str(folder / "data"), LINDYN_PROGRESS_INTERVAL_S="0")  # fmt: skip
        start_worker(procs, "worker", env, concurrency=2)
        yield str(start_api(procs, env).http.base_url).rstrip("/")
    finally:
        procs.stop_all()
        redis.kill()


@pytest.fixture
def client(server: str) -> Iterator[Client]:
    with Client(server, timeout=10) as c:
        yield c


def _cli(server: str, *args: str) -> Any:
    return runner.invoke(app, [*args, "--server", server])


def test_submit_wait_summary_trajectory_equal_dynamics(client: Client, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    run = client.submit(BODY, name="equal", tags={"test": tag})
    assert run.wait(progress=True, timeout=60) is run
    expected = simulate(SimulationRequest.model_validate(BODY))
    assert run.status == "succeeded" and run.done
    assert run.summary == {k: v.as_dict() for k, v in expected.summaries.items()}
    assert run.name == "equal" and run.tags == {"test": tag}
    assert run.data["comparison"] == expected.comparison.as_dict()
    columns = expected.trajectory_columns()
    pd.testing.assert_frame_equal(run.trajectory(), pd.DataFrame(columns))
    only_sc = run.trajectory("self_consistent")
    pd.testing.assert_frame_equal(only_sc, pd.DataFrame(expected.trajectory_columns(["self_consistent"])))
    # the spectrum, where it was recorded, equals the simulated singular values
    with_spectrum = run.trajectory("gd", spectrum=True)
    traj = expected.trajectories["gd"]
    for step, values in zip(traj.spectrum_steps.tolist(), traj.spectrum, strict=True):
        np.testing.assert_array_equal(with_spectrum.set_index("step").loc[step, "spectrum"], values)
    # the same request again answers the same run; a SimulationRequest works as well as a dict
    assert client.submit(SimulationRequest.model_validate(BODY)).id == run.id
    assert client.run(run.id).summary == run.summary

    # each export format, read back
    frame = pd.DataFrame(columns)
    assert pq.read_table(run.export(tmp_path / "t.parquet")).to_pydict() == columns
    pd.testing.assert_frame_equal(pd.read_csv(run.export(tmp_path / "t.csv")), frame)
    assert json.loads(run.export(tmp_path / "t.json").read_text()) == columns
    assert run.export(tmp_path / "gd.parquet", dynamics="gd").exists()
    assert set(pq.read_table(tmp_path / "gd.parquet").column("dynamics").to_pylist()) == {"gd"}
    png = run.figure(tmp_path / "fig.png")
    svg = run.figure(tmp_path / "fig.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:500]


def test_filters_and_pages(client: Client) -> None:
    batch = uuid.uuid4().hex
    runs = [client.submit({**BODY, "steps": 10, "seed": s, "gamma_w": 1.8 + 0.1 * s}, tags={"batch": batch})
            for s in range(7)]  # fmt: skip
    for r in runs:
        r.wait(progress=False, timeout=60)
    ids = {r.id for r in runs}
    # more than one page: 7 runs, 3 a page
    listed = list(client.runs(tag=f"batch={batch}", page_size=3))
    assert {r.id for r in listed} == ids and len(listed) == 7
    pages = 0
    requests: list[str] = []
    cursor = None
    while True:
        page = client.request("GET", "/v1/runs", params={"tag": f"batch={batch}", "limit": 3,
                                                         **({"cursor": cursor} if cursor else {})}).json()
        pages += 1
        requests += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and sorted(requests) == sorted(ids)
    assert [r.id for r in client.runs(tags={"batch": batch}, limit=4, page_size=3)] == requests[:4]
    assert client.count(tags={"batch": batch}) == 7

    # ranges on a parameter and on a summary metric of one dynamics; sorting by that metric
    by_gamma = {r.id for r in client.runs(tags={"batch": batch}, gamma_w_min=2.05, gamma_w_max=2.25)}
    assert by_gamma == {runs[3].id, runs[4].id}
    errors = {r.id: r.summary["gd"]["min_test_error"] for r in runs}
    cut = sorted(errors.values())[3]
    low = {r.id for r in client.runs(tags={"batch": batch}, dynamics="gd", min_test_error_max=cut)}
    assert low == {i for i, e in errors.items() if e <= cut} and len(low) == 4
    ranked = [r.id for r in client.runs(tags={"batch": batch}, dynamics="gd", sort="-min_test_error", page_size=2)]
    assert ranked == sorted(errors, key=lambda i: -errors[i])
    assert [r.id for r in client.runs(tags={"batch": batch}, status=["failed", "cancelled"])] == []

    with pytest.raises(ValidationFailed) as bad:
        list(client.runs(colour="red"))
    assert bad.value.status_code == 422 and "colour" in bad.value.fields
    with pytest.raises(ValidationFailed) as bad:
        list(client.runs(min_test_error_max=0.1))
    assert "dynamics=" in bad.value.fields["min_test_error_max"]


def test_cancel_and_errors(client: Client) -> None:
    run = client.submit(LONG)
    wait_for(lambda: run.refresh().progress[0] > 0, 60, "the long run to progress")
    assert run.cancel().status == "cancelled"
    with pytest.raises(Conflict, match="cannot be cancelled"):
        run.cancel()
    with pytest.raises(Conflict, match="no trajectory"):
        run.trajectory()
    assert run.wait(progress=False, timeout=5).status == "cancelled"
    with pytest.raises(NotFound, match="not found"):
        client.run(str(uuid.uuid4()))
    with pytest.raises(ValidationFailed) as bad:
        client.submit({**BODY, "rank": 99})
    assert "rank" in bad.value.fields and "between 1 and d" in bad.value.fields["rank"]
    with pytest.raises(ValidationFailed) as bad:
        client.submit(BODY, tags={"a=b": "c"})
    assert "tags" in str(bad.value)
    queued = client.submit(STAYS_QUEUED)
    with pytest.raises(TimeoutError):
        queued.wait(progress=False, timeout=0.3)
    queued.cancel()
    # nothing listens: refused after its retries (their schedule is tests/lindyn/test_client.py's)
    with refused_port() as port, pytest.raises(ServiceUnavailable, match="cannot reach"):
        Client(f"http://127.0.0.1:{port}", retries=2, backoff=0.01).run(run.id)


def test_cli(server: str, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    args = ["--d", "10", "--rank", "2", "--gamma-sigma2", "-1.5", "--gamma-w", "2.0", "--steps", "20",
            "--dynamics", "gd,self_consistent", "--seed", "4"]  # fmt: skip
    r = _cli(server, "submit", *args, "--name", name, "--tag", "via=cli", "--wait", "--no-progress", "--json")
    assert r.exit_code == 0, r.output
    run = json.loads(r.stdout)
    expected = simulate(SimulationRequest(d=10, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, steps=20, seed=4,
                                          dynamics=["gd", "self_consistent"]))  # fmt: skip
    assert run["status"] == "succeeded" and run["name"] == name and run["tags"] == {"via": "cli"}
    assert run["summaries"] == {k: v.as_dict() for k, v in expected.summaries.items()}
    rid = run["id"]

    human = _cli(server, "status", rid)
    assert human.exit_code == 0 and rid in human.stdout and "min_test_error" in human.stdout
    assert "succeeded" in _cli(server, "wait", rid, "--no-progress").stdout
    listed = _cli(server, "runs", "--name", name, "--json")
    assert listed.exit_code == 0 and [x["id"] for x in json.loads(listed.stdout)] == [rid]
    table = _cli(server, "runs", "--tag", "via=cli", "--where", "d=10", "--where", "gamma_w_min=1.5")
    assert table.exit_code == 0 and rid in table.stdout and table.stdout.startswith("id")
    metric = _cli(server, "runs", "--name", name, "--dynamics", "gd", "-w", "min_test_error_max=1e-12", "--json")
    assert metric.exit_code == 0 and json.loads(metric.stdout) == []

    frame = pd.DataFrame(expected.trajectory_columns())
    for fmt in ("parquet", "csv", "json"):
        out = tmp_path / f"traj.{fmt}"
        r = _cli(server, "fetch", rid, "--out", str(out))
        assert r.exit_code == 0, r.output
        back = {"parquet": pd.read_parquet, "csv": pd.read_csv, "json": lambda p: pd.DataFrame(json.loads(p.read_text()))}[fmt](out)
        pd.testing.assert_frame_equal(back, frame, check_dtype=fmt != "json")
    assert _cli(server, "figure", rid, "--out", str(tmp_path / "f.svg")).exit_code == 0
    assert (tmp_path / "f.svg").read_bytes().lstrip().startswith((b"<?xml", b"<svg"))

    # errors: the API's message and the exit code
    missing = str(uuid.uuid4())
    r = _cli(server, "status", missing)
    assert r.exit_code == 1 and f"error: run {missing} not found" in r.stderr
    r = _cli(server, "cancel", rid)
    assert r.exit_code == 1 and "cannot be cancelled" in r.stderr
    r = _cli(server, "submit", *args, "--rank", "50")
    assert r.exit_code == 2 and "error: rank:" in r.stderr and "between 1 and d" in r.stderr
    r = _cli(server, "runs", "--where", "colour=red")
    assert r.exit_code == 2 and "colour" in r.stderr
    r = _cli(server, "fetch", rid, "--out", str(tmp_path / "t.xml"))
    assert r.exit_code == 2 and ".xml" in r.stderr
    with refused_port() as port:
        r = runner.invoke(app, ["status", rid, "--server", f"http://127.0.0.1:{port}"])
    assert r.exit_code == 1 and "cannot reach the lindyn service" in r.stderr

    # cancel from the CLI, then wait reports it (exit 1)
    r = _cli(server, "submit", *args, "--backend", "cupy", "--seed", "78", "--json")  # stays queued (no gpu worker)
    long_id = json.loads(r.stdout)["id"]
    r = _cli(server, "cancel", long_id)
    assert r.exit_code == 0 and r.stdout.strip() == f"{long_id} cancelled"
    r = _cli(server, "wait", long_id, "--no-progress")
    assert r.exit_code == 1 and "cancelled" in r.stderr

    # the environment variable names the server
    env_run = runner.invoke(app, ["status", rid, "--json"], env={"LINDYN_SERVER": server})
    assert env_run.exit_code == 0 and json.loads(env_run.stdout)["id"] == rid


def test_cli_as_a_process(client: Client, server: str) -> None:
    """The installed entry point as a subprocess: lindyn runs --json, on three runs of this test's own."""
    tag = f"test={uuid.uuid4().hex}"
    ids = {client.submit({**BODY, "steps": 5, "seed": 200 + s}, tags=dict([tag.split("=")])).id for s in range(3)}

    def runs(*args: str) -> list[dict[str, Any]]:
        r = subprocess.run([*LINDYN, "runs", "--tag", tag, "--json", *args],
                           env={**clean_env(), "LINDYN_SERVER": server}, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    assert {run["id"] for run in runs()} == ids
    limited = runs("--limit", "2")
    assert len(limited) == 2 and {run["id"] for run in limited} < ids


def test_sweep_client_and_cli(client: Client, server: str, tmp_path: Path) -> None:
    base = {**BODY, "steps": 15, "spectrum_every": 0}
    label = uuid.uuid4().hex
    sw = client.sweep(base, {"gamma_w": (1.8, 2.2, 3), "seed": [0, 1]}, name="lab-sweep",
                      tags={"test": label, "kind": "grid"})  # fmt: skip
    assert sw.total == 6 and sw.as_dict()["total"] == 6
    assert sw.tags == {"kind": "grid", "test": label} and sw.name == "lab-sweep"
    # found again by its tags (value, or the key alone with another tag) and its name; its runs are not tagged
    assert [s.id for s in client.sweeps(tag=f"test={label}")] == [sw.id]
    assert [s.id for s in client.sweeps(tags={"test": label}, tag="kind")] == [sw.id]
    assert sw.id in {s.id for s in client.sweeps(name="lab-sweep")}
    assert list(client.sweeps(tags={"test": label, "kind": "other"})) == []
    assert client.count(tags={"test": label}) == 0
    with pytest.raises(ValidationFailed) as bad:
        list(client.sweeps(tag="=x"))
    assert "key=value" in bad.value.fields["tag"]
    with pytest.raises(ValidationFailed) as bad:
        client.sweep(base, {"seed": [0]}, tags={"a=b": "c"})
    assert "tags" in bad.value.fields
    assert sw.wait(progress=True, timeout=90).status == "finished"
    assert sw.counts["succeeded"] == 6 and sw.counts["diverged"] == 0  # no point of this grid diverges
    frame = sw.table()
    assert len(frame) == 6 and {"gamma_w", "seed", "run_id", "status", "gd.min_test_error"} <= set(frame.columns)
    assert {r.id for r in sw.runs()} == set(frame["run_id"])
    row = frame.iloc[-1]
    expected = simulate(SimulationRequest.model_validate({**base, "gamma_w": float(row["gamma_w"]),
                                                          "seed": int(row["seed"])}))  # fmt: skip
    assert row["gd.min_test_error"] == expected.summaries["gd"].min_test_error
    for fmt in ("parquet", "csv", "json"):
        out = sw.export_table(tmp_path / f"table.{fmt}")
        back = {"parquet": pd.read_parquet, "csv": pd.read_csv,
                "json": lambda p: pd.DataFrame(json.loads(p.read_text()))}[fmt](out)  # fmt: skip
        assert list(back["run_id"]) == list(frame["run_id"]), fmt
        assert list(back["gd.min_test_error"]) == list(frame["gd.min_test_error"]), fmt
    png = sw.phase_diagram(tmp_path / "phase.png", metric="min_test_error")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValidationFailed) as bad:
        sw.phase_diagram(tmp_path / "bad.svg", metric="colour")
    assert "metric" in bad.value.fields and not (tmp_path / "bad.svg").exists()
    with pytest.raises(NotFound, match="not found"):
        client.get_sweep(str(uuid.uuid4()))
    with pytest.raises(ValidationFailed):
        client.sweep(base, {"colour": [1, 2]})

    # the CLI: lindyn sweep --axis ... --wait, then lindyn table
    args = ["--d", "10", "--rank", "2", "--gamma-sigma2", "-1.5", "--steps", "10", "--spectrum-every", "0",
            "--dynamics", "gd"]  # fmt: skip
    r = _cli(server, "sweep", *args, "--axis", "gamma_w=linspace:1.8:2.0:2", "--axis", "seed=values:0,1",
             "--name", "cli-sweep", "--tag", f"test={label}", "--tag", "via=cli", "--wait", "--no-progress",
             "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["status"] == "finished" and data["total"] == 4 and data["axes"]["seed"] == [0, 1]
    assert data["tags"] == {"test": label, "via": "cli"} and data["name"] == "cli-sweep"
    # lindyn sweeps finds it by its tag (JSON with the tags, or a table), newest first
    r = _cli(server, "sweeps", "--tag", f"test={label}", "--json")
    assert r.exit_code == 0, r.output
    assert [(s["id"], s["tags"]) for s in json.loads(r.stdout)] == [(data["id"], data["tags"]), (sw.id, sw.tags)]
    r = _cli(server, "sweeps", "--tag", "via=cli", "--name", "cli-sweep")
    assert r.exit_code == 0 and r.stdout.startswith("id") and data["id"] in r.stdout and "via=cli" in r.stdout
    r = _cli(server, "sweeps", "--tag", "=x")
    assert r.exit_code == 2 and "tag" in r.stderr and "key=value" in r.stderr
    r = _cli(server, "sweep", *args, "--axis", "seed=values:0", "--tag", "novalue")
    assert r.exit_code == 2 and "key=value" in r.output
    out = tmp_path / "cli-table.csv"
    r = _cli(server, "table", data["id"], "--out", str(out))
    assert r.exit_code == 0, r.output
    assert len(pd.read_csv(out)) == 4
    r = _cli(server, "phase-diagram", data["id"], "--metric", "gd.min_test_error", "--out", str(tmp_path / "p.svg"))
    assert r.exit_code == 0, r.output
    assert b"<svg" in (tmp_path / "p.svg").read_bytes()[:1000]
    printed = _cli(server, "table", data["id"])
    assert printed.exit_code == 0 and "gd.min_test_error" in printed.stdout
    r = _cli(server, "sweep", *args, "--axis", "gamma_w=between:1:2")
    assert r.exit_code == 2 and "linspace:START:STOP:N" in r.stderr
    r = _cli(server, "table", str(uuid.uuid4()))
    assert r.exit_code == 1 and "not found" in r.stderr

"""/v1/sweeps in process (TestClient) on the embedded default: submit (validation of every grid point, the
grid limit, bulk-stored runs, chunked tasks), read, list, cancel, and the table after the workers' batch
task ran (called here, with real dynamics); a sweep's name and tags, and the list's filters on them (on
SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from core import Settings
from dynamics import SimulationRequest, simulate
from dynamics.simulate import batch_key
from service.grid import AXIS_FIELDS
from tests.service.conftest import make_client
from workers.tasks import execute_batch

BASE = {"d": 12, "rank": 2, "steps": 30, "dynamics": ["gd", "self_consistent"], "stopping": "paper"}
AXES = {"gamma_sigma2": {"linspace": [-2.0, -1.0, 3]}, "gamma_w": {"values": [1.0, 1.5, 2.0]}}
SWEEP = {"base": BASE, "axes": AXES, "name": "small"}
GRID = [(g, w) for g in (-2.0, -1.5, -1.0) for w in (1.0, 1.5, 2.0)]


def _tasks(settings: Settings) -> list[tuple[str, str, list[str]]]:
    """The queued messages: (task name, queue, run ids)."""
    out = []
    for path in sorted((settings.broker_folder / "queue").glob("*.msg"), key=lambda p: p.stat().st_mtime_ns):
        msg = json.loads(path.read_text())
        args = json.loads(base64.b64decode(msg["body"]))[0]
        out.append((msg["headers"]["task"], msg["properties"]["delivery_info"]["routing_key"], args[0]))
    return out


def _runs(client: TestClient, sweep_id: str) -> list[dict]:
    page = client.get("/v1/runs", params={"sweep_id": sweep_id, "limit": 500}).json()
    return [client.get(f"/v1/runs/{r['id']}").json() for r in page["items"]]


def close(value: object) -> object:
    """Batched and alone agree to round-off (batched BLAS may block the matmuls differently)."""
    return pytest.approx(value, rel=1e-9) if isinstance(value, float) else value


def _nothing_stored(client: TestClient) -> None:
    assert client.get("/v1/sweeps").json()["total"] == 0
    assert client.get("/v1/runs").json()["total"] == 0


def test_submit_stores_every_point_as_a_run_and_sends_chunks(client: TestClient, embedded_settings: Settings) -> None:
    r = client.post("/v1/sweeps", json={**SWEEP, "chunk_size": 4})
    assert r.status_code == 202, r.text
    created = r.json()
    assert created["total"] == 9 and r.headers["location"] == f"/v1/sweeps/{created['id']}"
    runs = _runs(client, created["id"])
    assert len(runs) == 9 and {run["status"] for run in runs} == {"queued"}
    requests = {(run["gamma_sigma2"], run["gamma_w"]): run["request"] for run in runs}
    assert sorted(requests) == sorted(GRID)
    for (g, w), stored in requests.items():
        expected = SimulationRequest.model_validate({**BASE, "gamma_sigma2": g, "gamma_w": w})
        assert stored == expected.normalized()
    assert len({run["cache_key"] for run in runs}) == 9

    # w = floor(12^1.0) = 12 runs dense, the rest reduced (2d wide): two batch groups, 3 + 6 points
    tasks = _tasks(embedded_settings)
    assert created["tasks"] == len(tasks) == 3
    assert {(name, queue) for name, queue, _ in tasks} == {("lindyn.simulate_batch_runs", "cpu")}
    assert sorted(len(ids) for _, _, ids in tasks) == [3, 3, 3]  # 3 -> 3, 6 -> 3 + 3 (dealt, at most 4 each)
    by_id = {run["id"]: SimulationRequest.model_validate(run["request"]) for run in runs}
    assert sorted(i for _, _, ids in tasks for i in ids) == sorted(by_id)
    for _, _, ids in tasks:
        assert len({batch_key(by_id[i]) for i in ids}) == 1


def test_chunk_size_comes_from_the_settings(embedded_settings: Settings) -> None:
    with make_client(embedded_settings.model_copy(update={"sweep_chunk_size": 2, "worker_processes": 2,
                                                                   "tasks_per_process": 1})) as c:
        assert c.post("/v1/sweeps", json=SWEEP).json()["tasks"] == 2 + 3  # 3 -> 2 + 1, 6 -> 2 + 2 + 2
    assert sorted(len(ids) for _, _, ids in _tasks(embedded_settings)) == [1, 2, 2, 2, 2]


def test_chunks_fit_the_memory_limit_of_a_run(embedded_settings: Settings) -> None:
    """A stacked batch holds every point's arrays at once (dynamics.request.run_bytes): with LINDYN_MAX_RUN_BYTES
    room for two points of the largest, no task gets more than two, whatever the chunk size."""
    from dynamics.request import run_bytes

    requests = [SimulationRequest(**BASE, gamma_sigma2=g, gamma_w=w) for g, w in GRID]
    per_point = max(run_bytes([r]) for r in requests)
    limit = 2 * per_point + per_point // 2
    settings = embedded_settings.model_copy(update={"sweep_chunk_size": 64, "worker_processes": 1,
                                                    "tasks_per_process": 1, "max_run_bytes": limit})
    with make_client(settings) as c:
        assert c.post("/v1/sweeps", json=SWEEP).status_code == 202
    tasks = _tasks(embedded_settings)
    assert sorted(len(ids) for _, _, ids in tasks) == [1, 2, 2, 2, 2]  # 3 dense: 2 + 1; 6 reduced: 2 + 2 + 2
    by_id = {}
    with make_client(settings) as c:
        for run in c.get("/v1/runs", params={"limit": 100}).json()["items"]:
            by_id[run["id"]] = SimulationRequest.model_validate(c.get(f"/v1/runs/{run['id']}").json()["request"])
    for _, _, ids in tasks:
        assert run_bytes([by_id[i] for i in ids]) <= limit


def test_the_default_chunks_give_every_worker_process_a_task(embedded_settings: Settings) -> None:
    """With the server's chunk size, a group of n points makes at least min(n, worker processes x
    LINDYN_TASKS_PER_PROCESS) tasks, its points dealt round the tasks in grid order (each task samples the
    whole grid)."""
    settings = embedded_settings.model_copy(update={"sweep_chunk_size": 64, "worker_processes": 2,
                                                    "tasks_per_process": 2})
    with make_client(settings) as c:
        created = c.post("/v1/sweeps", json=SWEEP).json()
        runs = _runs(c, created["id"])
    assert created["tasks"] == 3 + 4  # 3 dense points: 3 x 1; 6 reduced ones: 2 + 2 + 1 + 1
    tasks = _tasks(embedded_settings)
    assert sorted(len(ids) for _, _, ids in tasks) == [1, 1, 1, 1, 1, 2, 2]
    position = {run["id"]: GRID.index((run["gamma_sigma2"], run["gamma_w"])) for run in runs}
    for _, _, ids in tasks:
        if len(ids) == 2:  # dealt: the 1st and 5th, the 2nd and 6th point of the group of 6
            a, b = (position[i] for i in ids)
            assert a < b and b - a >= 4


def test_cupy_sweeps_go_to_the_gpu_queue(client: TestClient, embedded_settings: Settings) -> None:
    assert client.post("/v1/sweeps", json={**SWEEP, "base": {**BASE, "backend": "cupy"}}).status_code == 202
    assert {queue for _, queue, _ in _tasks(embedded_settings)} == {"gpu"}


def test_an_axis_replaces_the_other_form_in_the_base(client: TestClient) -> None:
    body = {"base": {**BASE, "width": 30, "sigma2": 0.01}, "axes": {"gamma_w": {"values": [1.5, 2.0]}}}
    sid = client.post("/v1/sweeps", json=body).json()["id"]
    runs = _runs(client, sid)
    assert sorted(run["width"] for run in runs) == [41, 144] and {run["sigma2"] for run in runs} == {0.01}
    body = {"base": {**BASE, "gamma_w": 2.0, "gamma_sigma2": -1.5}, "axes": {"width": {"values": [30, 40]},
                                                                           "sigma2": {"values": [0.01]}}}
    sid = client.post("/v1/sweeps", json=body).json()["id"]
    runs = _runs(client, sid)
    assert sorted(run["width"] for run in runs) == [30, 40] and {run["sigma2"] for run in runs} == {0.01}


def test_integer_fields_and_seeds_are_axes(client: TestClient) -> None:
    body = {"base": BASE | {"gamma_sigma2": -1.5, "gamma_w": 2.0},
            "axes": {"d": {"values": [12, 16.0]}, "seed": {"linspace": [0, 2, 3]}, "steps": {"values": [5]}}}
    r = client.post("/v1/sweeps", json=body)
    assert r.status_code == 202, r.text
    sweep = client.get(f"/v1/sweeps/{r.json()['id']}").json()
    assert sweep["axes"] == {"d": [12, 16], "seed": [0, 1, 2], "steps": [5]} and sweep["total"] == 6
    assert {(run["request"]["d"], run["request"]["seed"]) for run in _runs(client, sweep["id"])} == {
        (d, s) for d in (12, 16) for s in (0, 1, 2)
    }


def test_a_bad_point_is_named_and_nothing_is_stored(client: TestClient) -> None:
    # rank 13 > d = 12: the point's own axis value is at fault
    r = client.post("/v1/sweeps", json={**SWEEP, "axes": {**AXES, "rank": {"values": [2, 13]}}})
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert len(errors) == 9  # each of the 3 x 3 points with rank = 13
    first = errors[0]
    assert first["field"] == "rank" and first["loc"] == ["body", "axes", "rank"]
    assert first["point"] == {"gamma_sigma2": -2.0, "gamma_w": 1.0, "rank": 13}
    assert "gamma_sigma2 = -2.0, gamma_w = 1.0, rank = 13" in first["msg"] and "between 1 and d" in first["msg"]
    # a field of the base that does not fit one point: d = 4 is below the base's rank = 5
    r = client.post("/v1/sweeps", json={"base": {**BASE, "rank": 5, "gamma_sigma2": -1.5, "gamma_w": 2.0},
                                        "axes": {"d": {"values": [12, 4, 16]}}})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["field"] == "rank" and error["loc"] == ["body", "base", "rank"] and error["point"] == {"d": 4}
    # the width of one point is below 1 ... and a point over the limits
    r = client.post("/v1/sweeps", json={**SWEEP, "axes": {**AXES, "gamma_w": {"values": [1.0, -1.0]}}})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["detail"]} == {"gamma_w"}
    assert all(e["point"]["gamma_w"] == -1.0 for e in r.json()["detail"])
    r = client.post("/v1/sweeps", json={**SWEEP, "axes": {**AXES, "steps": {"values": [10, 10**9]}}})
    assert r.status_code == 422 and "exceeds the limit" in r.json()["detail"][0]["msg"]
    _nothing_stored(client)


def test_bad_points_reported_are_bounded(client: TestClient) -> None:
    r = client.post("/v1/sweeps", json={"base": {**BASE, "gamma_w": 2.0, "gamma_sigma2": -1.5},
                                        "axes": {"rank": {"linspace": [13, 112, 100]}}})
    assert r.status_code == 422 and len(r.json()["detail"]) == 10
    assert [e["point"]["rank"] for e in r.json()["detail"]] == list(range(13, 23))
    _nothing_stored(client)


def test_a_fault_of_the_base_is_reported_once(client: TestClient) -> None:
    r = client.post("/v1/sweeps", json={"base": {**BASE, "gamma_w": 2.0, "gamma_sigma2": -1.5, "rank": 50},
                                        "axes": {"seed": {"linspace": [0, 99, 100]}}})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "base", "rank"] and error["point"] == {"seed": 0.0}
    assert error["msg"] == "grid point seed = 0.0: rank = 50 must be between 1 and d = 12"
    r = client.post("/v1/sweeps", json={"base": {k: v for k, v in BASE.items() if k != "steps"},
                                        "axes": {"rank": {"values": [2, 3]}}})
    (error,) = r.json()["detail"]  # the same fault at both points: once
    assert error["field"] == "gamma_sigma2" and error["msg"].endswith("give either gamma_sigma2 or sigma2 (in the base or as an axis)")
    _nothing_stored(client)


def test_a_grid_over_the_limit(embedded_settings: Settings) -> None:
    with make_client(embedded_settings.model_copy(update={"max_grid_points": 8})) as c:
        r = c.post("/v1/sweeps", json=SWEEP)
        assert r.status_code == 422
        (error,) = r.json()["detail"]
        assert error["loc"] == ["body", "axes"] and "9 points (3 x 3), over the limit of 8" in error["msg"]
        # not even listed: n = 10^9 is refused from its size alone
        huge = {**SWEEP, "axes": {"seed": {"linspace": [0, 1e9, 10**9]}}}
        assert c.post("/v1/sweeps", json=huge).status_code == 422
        assert c.post("/v1/sweeps", json={**SWEEP, "axes": {"gamma_w": {"values": [2.0]}}}).status_code == 422
        _nothing_stored(c)


@pytest.mark.parametrize("axis", ["foo", "dynamics", "stopping", "backend"])
def test_an_axis_must_be_a_numeric_request_field(client: TestClient, axis: str) -> None:
    r = client.post("/v1/sweeps", json={**SWEEP, "axes": {**AXES, axis: {"values": [1]}}})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["field"] == axis and error["loc"] == ["body", "axes", axis]
    assert "not a numeric request field" in error["msg"] and "gamma_w" in error["msg"]
    _nothing_stored(client)


def test_axis_fields() -> None:
    assert set(AXIS_FIELDS) == {"d", "rank", "noise_std", "task_seed", "seed", "gamma_sigma2", "gamma_w", "sigma2",
                                "width", "steps", "lr", "lr_constant", "record_every", "spectrum_every"}


@pytest.mark.parametrize(
    ("axes", "loc", "words"),
    [
        ({"gamma_w": {"values": [1.0], "linspace": [1, 2, 3]}}, ["body", "axes", "gamma_w"], "either values or"),
        ({"gamma_w": {}}, ["body", "axes", "gamma_w"], "either values or linspace"),
        ({"gamma_w": {"values": []}}, ["body", "axes", "gamma_w", "values"], "at least 1"),
        ({"gamma_w": {"linspace": [1, 2, 0]}}, ["body", "axes", "gamma_w", "linspace", "2"], "greater than"),
        ({"gamma_w": {"linspace": [1, 2]}}, ["body", "axes", "gamma_w", "linspace"], ""),
        ({"gamma_w": {"values": ["x"]}}, ["body", "axes", "gamma_w", "values", "0"], ""),
        ({"gamma_w": {"step": 0.1}}, ["body", "axes", "gamma_w", "step"], "not permitted"),
        ({"gamma_w": [1.0, 2.0]}, ["body", "axes", "gamma_w"], ""),
        ({}, ["body", "axes"], "at least 1"),
        ({a: {"values": [1]} for a in ("d", "seed", "task_seed", "steps")}, ["body", "axes"], "at most 3"),
        ({**AXES, "gamma_w": {"values": [2.0, 2]}}, ["body", "axes", "gamma_w"], "the value 2.0 twice"),
        ({"gamma_w": {"values": [2.0]}, "width": {"values": [10]}}, ["body", "axes", "gamma_w"], "same quantity"),
    ],
)
def test_bad_axis_specs(client: TestClient, axes: dict, loc: list[str], words: str) -> None:
    r = client.post("/v1/sweeps", json={**SWEEP, "axes": axes})
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(e["loc"][: len(loc)] == loc and words in e["msg"] for e in errors), errors
    _nothing_stored(client)


def test_an_axis_spec_error_reads_plainly(client: TestClient) -> None:
    r = client.post("/v1/sweeps", json={**SWEEP, "axes": {"gamma_w": {}}})
    assert r.json()["detail"] == [{"loc": ["body", "axes", "gamma_w"], "field": "gamma_w",
                                   "msg": "give either values or linspace", "type": "axis_spec"}]


def test_body_that_is_not_a_sweep(client: TestClient) -> None:
    for body in ({"axes": AXES}, {**SWEEP, "extra": 1}, {**SWEEP, "base": [1]}, {**SWEEP, "name": "x" * 201}):
        r = client.post("/v1/sweeps", json=body)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][0] == "body", body
    r = client.post("/v1/sweeps", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_read_list_and_unknown_ids(client: TestClient) -> None:
    ids = [client.post("/v1/sweeps", json={**SWEEP, "name": f"s{i}"}).json()["id"] for i in range(3)]
    sweep = client.get(f"/v1/sweeps/{ids[0]}").json()
    assert sweep["name"] == "s0" and sweep["status"] == "queued" and sweep["total"] == 9
    assert sweep["counts"]["queued"] == 9 and sum(sweep["counts"].values()) == 9
    assert sweep["progress"] == {"finished": 0, "total": 9, "fraction": 0.0}
    assert sweep["axes"] == {"gamma_sigma2": [-2.0, -1.5, -1.0], "gamma_w": [1.0, 1.5, 2.0]}
    assert sweep["base"] == BASE and sweep["started_at"] is None and sweep["wall_s"] is None
    page = client.get("/v1/sweeps", params={"limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    seen = page["items"] + client.get("/v1/sweeps", params={"limit": 2, "offset": 2}).json()["items"]
    assert sorted(s["id"] for s in seen) == sorted(ids)
    for params in ({"limit": 0}, {"offset": -1}):
        assert client.get("/v1/sweeps", params=params).status_code == 422
    for path in (f"/v1/sweeps/{uuid.uuid4()}", f"/v1/sweeps/{uuid.uuid4()}/table", "/v1/sweeps/nope"):
        r = client.get(path)
        assert r.status_code == 404 and "not found" in r.json()["detail"], path
    assert client.post(f"/v1/sweeps/{uuid.uuid4()}/cancel").status_code == 404


def test_the_table_after_the_batches_ran(client: TestClient, embedded_settings: Settings) -> None:
    sid = client.post("/v1/sweeps", json=SWEEP).json()["id"]
    queued = client.get(f"/v1/sweeps/{sid}/table").json()
    assert queued["status"] == ["queued"] * 9 and queued["gd.min_test_error"] == [None] * 9
    for _, _, ids in _tasks(embedded_settings):
        outcome = execute_batch([uuid.UUID(i) for i in ids], embedded_settings)
        assert set(outcome.values()) == {"succeeded"}, outcome

    sweep = client.get(f"/v1/sweeps/{sid}").json()
    assert sweep["status"] == "finished" and sweep["counts"]["succeeded"] == 9
    assert sweep["progress"] == {"finished": 9, "total": 9, "fraction": 1.0}
    assert sweep["started_at"] and sweep["finished_at"] and sweep["wall_s"] > 0

    table = client.get(f"/v1/sweeps/{sid}/table").json()
    assert list(table)[:4] == ["gamma_sigma2", "gamma_w", "run_id", "status"]
    assert list(zip(table["gamma_sigma2"], table["gamma_w"], strict=True)) == GRID
    assert "gd.min_test_error" in table and "self_consistent.stable_rank_at_min" in table
    assert "lazy.min_test_error" not in table
    for i, (g, w) in enumerate(GRID):
        expected = simulate(SimulationRequest.model_validate({**BASE, "gamma_sigma2": g, "gamma_w": w}))
        for name, summary in expected.summaries.items():
            for metric, value in summary.as_dict().items():
                assert table[f"{name}.{metric}"][i] == close(value), (g, w, name, metric)
        assert expected.comparison is not None
        assert table["log_max_distance"][i] == close(expected.comparison.log_max_distance)
        run = client.get(f"/v1/runs/{table['run_id'][i]}").json()
        assert run["summaries"]["gd"]["min_test_error"] == table["gd.min_test_error"][i]

    parquet = client.get(f"/v1/sweeps/{sid}/table", params={"format": "parquet"})
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(parquet.content)).to_pydict() == table
    csv = client.get(f"/v1/sweeps/{sid}/table", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    frame = pq.read_table(io.BytesIO(parquet.content)).to_pandas()  # nulls as NaN, as CSV reads them
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(csv.text)), frame, check_dtype=False)
    assert client.get(f"/v1/sweeps/{sid}/table", params={"format": "xml"}).status_code == 422
    r = client.post(f"/v1/sweeps/{sid}/cancel")
    assert r.status_code == 409 and "no queued or running" in r.json()["detail"]


def test_cancel_keeps_what_finished(client: TestClient, embedded_settings: Settings) -> None:
    sid = client.post("/v1/sweeps", json={**SWEEP, "chunk_size": 64}).json()["id"]  # a task per batch group
    first = min(_tasks(embedded_settings), key=lambda t: len(t[2]))[2]  # the 3 dense points
    execute_batch([uuid.UUID(i) for i in first], embedded_settings)
    r = client.post(f"/v1/sweeps/{sid}/cancel")
    assert r.status_code == 200
    sweep = r.json()
    assert sweep["status"] == "cancelled" and sweep["counts"]["succeeded"] == 3 and sweep["counts"]["cancelled"] == 6
    assert sweep["progress"]["finished"] == 9 and sweep["finished_at"]
    table = client.get(f"/v1/sweeps/{sid}/table").json()
    done = [i for i, s in enumerate(table["status"]) if s == "succeeded"]
    assert sorted(table["run_id"][i] for i in done) == sorted(first)
    assert all(table["gd.min_test_error"][i] is not None for i in done)
    assert all(v is None for i, v in enumerate(table["gd.min_test_error"]) if i not in done)
    # the cancelled runs' task, delivered later, runs nothing
    rest = [i for _, _, ids in _tasks(embedded_settings) for i in ids if i not in first]
    assert set(execute_batch([uuid.UUID(i) for i in rest], embedded_settings).values()) == {"skipped"}


def test_enqueue_failure_is_503_and_the_runs_failed(embedded_settings: Settings) -> None:
    settings = embedded_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with make_client(settings) as c:
        r = c.post("/v1/sweeps", json=SWEEP)
        assert r.status_code == 503 and "queue" in r.json()["detail"]
        (sweep,) = c.get("/v1/sweeps").json()["items"]
        assert sweep["counts"]["failed"] == 9 and sweep["status"] == "finished"
        run = c.get(f"/v1/runs/{c.get('/v1/runs').json()['items'][0]['id']}").json()
    assert run["status"] == "failed" and "could not enqueue" in run["error"]


@pytest.fixture
def labelled(db_url: str, embedded_settings: Settings) -> Iterator[TestClient]:
    """The API on a migrated SQLite or PostgreSQL database (no worker: runs stay queued)."""
    with make_client(embedded_settings.model_copy(update={"database_url": db_url})) as c:
        yield c


def test_tags_are_stored_read_and_listed(labelled: TestClient) -> None:
    c = labelled
    r = c.post("/v1/sweeps", json={**SWEEP, "tags": {"project": "phase", "by": "ana", "empty": ""}})
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    sweep = c.get(f"/v1/sweeps/{sid}").json()
    assert sweep["name"] == "small" and sweep["tags"] == {"by": "ana", "empty": "", "project": "phase"}
    (listed,) = c.get("/v1/sweeps").json()["items"]
    assert listed["id"] == sid and listed["tags"] == sweep["tags"]
    assert "tags" not in sweep["base"]
    # the labels stay on the sweep: its runs are found by sweep_id, not by the sweep's tags
    runs = c.get("/v1/runs", params={"sweep_id": sid, "limit": 500}).json()["items"]
    assert len(runs) == 9 and all(run["tags"] == {} and run["name"] is None for run in runs)
    assert c.get("/v1/runs", params={"tag": "project=phase"}).json()["total"] == 0
    # no tags: an empty mapping
    other = c.post("/v1/sweeps", json={"base": BASE, "axes": AXES}).json()["id"]
    assert c.get(f"/v1/sweeps/{other}").json()["tags"] == {}


def test_sweeps_are_found_by_name_and_tags(labelled: TestClient) -> None:
    c = labelled
    specs = [("a", {"project": "p1", "kind": "x"}), ("b", {"project": "p1"}), ("a", {"project": "p2"}), (None, {})]
    ids = []
    for seed, (name, tags) in enumerate(specs):
        body = {"base": {**BASE, "seed": seed}, "axes": AXES, "tags": tags, **({"name": name} if name else {})}
        r = c.post("/v1/sweeps", json=body)
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])

    def find(**params: Any) -> list[str]:
        r = c.get("/v1/sweeps", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total"] == len(page["items"]), page
        return [s["id"] for s in page["items"]]

    assert find() == ids[::-1]  # newest first
    assert set(find(name="a")) == {ids[0], ids[2]}
    assert find(name="nope") == []
    assert set(find(tag="project=p1")) == {ids[0], ids[1]}
    assert find(tag=["project=p1", "kind"]) == [ids[0]]
    assert set(find(tag="project")) == set(ids[:3])
    assert find(tag="kind=y") == [] and find(tag="project=") == []
    assert find(name="a", tag="project=p2") == [ids[2]]
    # filtered pages: the total counts every match
    page = c.get("/v1/sweeps", params={"tag": "project", "limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = c.get("/v1/sweeps", params={"tag": "project", "limit": 2, "offset": 2}).json()["items"]
    assert {s["id"] for s in page["items"] + rest} == set(ids[:3])


@pytest.mark.parametrize(
    "tags", [{"a=b": "x"}, {"": "x"}, {"k" * 101: "x"}, {"k": "v" * 201}, {"k": 1}, ["x"], "project=phase"]
)
def test_bad_tags_are_422_and_nothing_is_stored(client: TestClient, tags: Any) -> None:
    r = client.post("/v1/sweeps", json={**SWEEP, "tags": tags})
    assert r.status_code == 422, r.text
    assert any(e["loc"][:2] == ["body", "tags"] for e in r.json()["detail"]), r.json()
    _nothing_stored(client)


def test_the_tag_rules_are_those_of_runs(client: TestClient) -> None:
    """The same tags are refused with the same message on POST /v1/runs and on POST /v1/sweeps."""
    for tags in ({"a=b": "x"}, {"k": "v" * 201}):
        run = client.post("/v1/runs", json={**BASE, "gamma_sigma2": -1.5, "gamma_w": 2.0, "tags": tags})
        sweep = client.post("/v1/sweeps", json={**SWEEP, "tags": tags})
        assert run.status_code == sweep.status_code == 422
        assert run.json()["detail"][0]["msg"] == sweep.json()["detail"][0]["msg"]
    at_the_limits = {"k": "v" * 200, "k" * 100: "v"}
    assert client.post("/v1/sweeps", json={**SWEEP, "tags": at_the_limits}).status_code == 202


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"tag": "=x"}, "tag", "key=value"),
        ({"tag": ["ok", "=x"]}, "tag", "key=value"),
        ({"colour": "red"}, "colour", "unknown query parameter"),
        ({"tags": "a=b"}, "tags", "unknown query parameter"),
        ({"limit": 0}, "limit", "greater"),
        ({"limit": 501}, "limit", "less"),
        ({"offset": -1}, "offset", "greater"),
    ],
)
def test_bad_list_filters_are_422_naming_them(client: TestClient, params: dict, field: str, words: str) -> None:
    r = client.get("/v1/sweeps", params=params)
    assert r.status_code == 422, r.text
    assert any(e["field"] == field and words in e["msg"] for e in r.json()["detail"]), r.json()


def test_openapi_documents_sweeps(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert {"/v1/sweeps", "/v1/sweeps/{sweep_id}", "/v1/sweeps/{sweep_id}/cancel",
            "/v1/sweeps/{sweep_id}/table"} <= set(doc["paths"])
    post = doc["paths"]["/v1/sweeps"]["post"]
    assert {"202", "422"} <= set(post["responses"])
    assert "SweepCreate" in json.dumps(post["requestBody"])
    assert "tags" in doc["components"]["schemas"]["SweepCreate"]["properties"]
    assert "tags" in doc["components"]["schemas"]["SweepBrief"]["properties"]
    listing = doc["paths"]["/v1/sweeps"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert set(params) == {"limit", "offset", "name", "tag"} and all(p.get("description") for p in params.values())
    assert "422" in listing["responses"]

"""Issue 15 item 5 through the API (TestClient, real SQLite and PostgreSQL): float filters that find what a
linspace stored, snapped axis values, and DELETE of runs and sweeps with everything they hold.

The float filters' tolerance is models.queries.FLOAT_RTOL = 1e-9 relative: values a few ulps (1e-16
relative) apart match, values 1e-6 relative apart do not."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from core import Settings, get_sessionmaker, session_scope
from dynamics import SimulationRequest, simulate
from models import Run, RunSummary, TrajectoryPoint
from models.queries import FLOAT_RTOL
from models.results import store_result
from models.runs import claim_run, delete_runs, record_progress
from service.grid import snap
from tests.service.conftest import make_client
from workers.tasks import execute_run

BASE = {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 8, "spectrum_every": 2}
KEY = "a-key-of-the-test"


@pytest.fixture
def api(db_url: str, embedded_settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    settings = embedded_settings.model_copy(update={"database_url": db_url})
    with make_client(settings) as c:
        yield c, settings


def _count(settings: Settings, table: Any, run_id: str) -> int:
    with get_sessionmaker(settings.db_url)() as s:
        return int(s.scalar(select(func.count()).select_from(table).where(table.run_id == uuid.UUID(run_id))) or 0)


def _found(c: TestClient, **params: Any) -> set[str]:
    r = c.get("/v1/runs", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    return {item["id"] for item in r.json()["items"]}


def test_snap_rounds_to_12_significant_digits() -> None:
    assert snap(-1.3000000000000003) == -1.3 and snap(0.1 + 0.2) == 0.3
    assert snap(1.23456789012345) == 1.23456789012 and snap(0.0) == 0.0
    assert FLOAT_RTOL == 1e-9


def test_a_linspace_axis_is_stored_snapped_and_found_by_its_value(api: tuple[TestClient, Settings]) -> None:
    """np.linspace(-2.2, -0.8, 15)[9] is -1.3000000000000003: stored as -1.3, found by gamma_sigma2=-1.3."""
    c, _ = api
    body = {"base": BASE, "axes": {"gamma_sigma2": {"linspace": [-2.2, -0.8, 15]}}}
    r = c.post("/v1/sweeps", json=body)
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    axis = c.get(f"/v1/sweeps/{sid}").json()["axes"]["gamma_sigma2"]
    assert axis[9] == -1.3 and axis[0] == -2.2 and axis[-1] == -0.8 and len(axis) == 15
    found = _found(c, gamma_sigma2=-1.3, sweep_id=sid)
    assert len(found) == 1
    run = c.get(f"/v1/runs/{found.pop()}").json()
    assert run["request"]["gamma_sigma2"] == -1.3


def test_float_filters_match_within_the_relative_tolerance(api: tuple[TestClient, Settings]) -> None:
    c, _ = api
    off = c.post("/v1/runs", json={**BASE, "gamma_sigma2": -1.3000000000000003}).json()["id"]
    far = c.post("/v1/runs", json={**BASE, "gamma_sigma2": -1.3 * (1 + 1e-6)}).json()["id"]
    assert _found(c, gamma_sigma2=-1.3) == {off}
    assert _found(c, gamma_sigma2_min=-1.3) == {off}  # stored a few ulps below -1.3: inside the widened bound
    assert _found(c, gamma_sigma2_max=-1.3, gamma_sigma2_min=-1.31) == {off, far}
    assert _found(c, gamma_sigma2=-1.3 * (1 + 1e-6)) == {far}
    # sigma2 = 6^-1.3 computed another way than the service did (exp/log instead of a power)
    assert off in _found(c, sigma2=math.exp(-1.3 * math.log(6)))
    assert _found(c, d=6) == {off, far} and _found(c, d=7) == set()  # integers stay exact


def test_delete_a_run_with_its_trajectory(api: tuple[TestClient, Settings]) -> None:
    c, settings = api
    rid = c.post("/v1/runs", json=BASE).json()["id"]
    assert execute_run(uuid.UUID(rid), settings) == "succeeded"
    assert _count(settings, TrajectoryPoint, rid) > 0 and _count(settings, RunSummary, rid) == 1
    r = c.delete(f"/v1/runs/{rid}")
    assert r.status_code == 204 and r.content == b""
    assert c.get(f"/v1/runs/{rid}").status_code == 404
    assert c.get(f"/v1/runs/{rid}/trajectory").status_code == 404
    assert _count(settings, TrajectoryPoint, rid) == 0 and _count(settings, RunSummary, rid) == 0
    r = c.delete(f"/v1/runs/{rid}")
    assert r.status_code == 404 and rid in r.text
    # the same request again is a new run (the deleted one no longer answers it)
    again = c.post("/v1/runs", json=BASE)
    assert again.status_code == 202 and again.json()["id"] != rid


def test_a_point_of_a_sweep_is_deleted_with_its_sweep(api: tuple[TestClient, Settings]) -> None:
    c, settings = api
    body = {"base": BASE, "axes": {"seed": {"values": [0, 1]}}, "tags": {"k": "v"}}
    sid = c.post("/v1/sweeps", json=body).json()["id"]
    rids = c.get(f"/v1/sweeps/{sid}/table").json()["run_id"]
    assert execute_run(uuid.UUID(rids[0]), settings) == "succeeded"
    r = c.delete(f"/v1/runs/{rids[0]}")
    assert r.status_code == 409 and sid in r.json()["detail"]
    assert c.get(f"/v1/runs/{rids[0]}").status_code == 200  # refused: nothing deleted
    r = c.delete(f"/v1/sweeps/{sid}")
    assert r.status_code == 204
    assert c.get(f"/v1/sweeps/{sid}").status_code == 404
    assert c.delete(f"/v1/sweeps/{sid}").status_code == 404
    for rid in rids:
        assert c.get(f"/v1/runs/{rid}").status_code == 404
        assert _count(settings, TrajectoryPoint, rid) == 0
    assert sid not in {s["id"] for s in c.get("/v1/sweeps").json()["items"]}


def test_deletes_need_a_key_when_keys_are_set(db_url: str, embedded_settings: Settings) -> None:
    settings = embedded_settings.model_copy(update={"database_url": db_url, "api_keys": [KEY]})
    with make_client(settings) as c:
        auth = {"Authorization": f"Bearer {KEY}"}
        rid = c.post("/v1/runs", json=BASE, headers=auth).json()["id"]
        sid = c.post("/v1/sweeps", json={"base": BASE, "axes": {"seed": {"values": [5]}}}, headers=auth).json()["id"]
        assert c.delete(f"/v1/runs/{rid}").status_code == 401
        assert c.delete(f"/v1/sweeps/{sid}", headers={"Authorization": "Bearer wrong"}).status_code == 403
        assert c.get(f"/v1/runs/{rid}").status_code == 200 and c.get(f"/v1/sweeps/{sid}").status_code == 200
        assert c.delete(f"/v1/runs/{rid}", headers=auth).status_code == 204
        assert c.delete(f"/v1/sweeps/{sid}", headers=auth).status_code == 204


def test_a_worker_writes_nothing_into_a_run_deleted_while_it_ran(db_url: str) -> None:
    """The run is claimed (running) when it is deleted: the worker's next progress report says stop, and its
    result is not stored (no summaries, no trajectory rows under the deleted id)."""
    factory = get_sessionmaker(db_url)
    request = SimulationRequest.model_validate(BASE)
    from models.runs import new_run

    with session_scope(factory) as s:
        run = new_run(request)
        s.add(run)
    with session_scope(factory) as s:
        assert claim_run(s, run.id) is not None
        assert record_progress(s, run.id, 2, 8)
    result = simulate(request)  # the worker computes meanwhile
    with session_scope(factory) as s:
        assert delete_runs(s, [run.id]) == 1
    with session_scope(factory) as s:
        assert not record_progress(s, run.id, 4, 8)
        assert store_result(s, run.id, result) is None
    with factory() as s:
        assert s.get(Run, run.id) is None
        for table in (TrajectoryPoint, RunSummary):
            assert s.scalar(select(func.count()).select_from(table).where(table.run_id == run.id)) == 0

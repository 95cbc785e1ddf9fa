"""A sweep's adaptive refinement through /v1/sweeps in process (TestClient, the embedded default): the 422s of
a refinement that cannot run, its state in GET, the rounds (run here by the workers' functions with real
dynamics), the table and the phase diagram on the refined points, cancel between rounds; and the heat map's
nearest-point cells (service/plots.py)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from core import Settings
from service.plots import grid_of
from tests.service.conftest import make_client
from workers.refinement import after_runs
from workers.tasks import execute_batch

BASE = {"d": 12, "rank": 2, "steps": 30, "stopping": "paper", "dynamics": ["gd"], "spectrum_every": 0}
AXES = {"gamma_sigma2": {"values": [-2.0, -1.0, 0.0]}, "gamma_w": {"values": [0.5, 1.5, 2.5]}}
REFINE = {"metric": "gd.min_test_error", "rounds": 2, "budget": 12}
SWEEP = {"base": BASE, "axes": AXES, "refine": REFINE}
GRID = list(itertools.product([-2.0, -1.0, 0.0], [0.5, 1.5, 2.5]))


class Sent:
    """Records the tasks a round sends (the broker is tests/e2e's subject)."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def send_task(self, name: str, args: list[Any], queue: str) -> None:
        self.ids += args[0]


def _nothing_stored(client: TestClient) -> None:
    assert client.get("/v1/sweeps").json()["total"] == 0 and client.get("/v1/runs").json()["total"] == 0


def _error(r: Any) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    (error,) = r.json()["detail"]
    return error


def test_a_refinement_that_cannot_run_is_a_422_naming_the_field(client: TestClient) -> None:
    e = _error(client.post("/v1/sweeps", json={**SWEEP, "refine": {**REFINE, "metric": "min_test_error"}}))
    assert e["loc"] == ["body", "refine", "metric"] and "gd.min_test_error" in e["msg"]
    e = _error(client.post("/v1/sweeps", json={**SWEEP, "refine": {**REFINE, "metric": "lazy.min_test_error"}}))
    assert e["field"] == "metric" and "not a summary metric of a requested dynamics" in e["msg"]
    e = _error(client.post("/v1/sweeps", json={**SWEEP, "refine": {**REFINE, "metric": "gd.stop_reason"}}))
    assert e["field"] == "metric"  # not a number
    e = _error(client.post("/v1/sweeps", json={**SWEEP, "refine": {**REFINE, "metric": "log_max_distance"}}))
    assert e["field"] == "metric"  # only GD runs: no comparison
    for field, value in (("rounds", 0), ("rounds", 11), ("budget", 0), ("colour", 1)):
        e = _error(client.post("/v1/sweeps", json={**SWEEP, "refine": {**REFINE, field: value}}))
        assert e["loc"] == ["body", "refine", field], e
    three = {**AXES, "seed": {"values": [0, 1]}}
    e = _error(client.post("/v1/sweeps", json={**SWEEP, "axes": three}))
    assert e["loc"] == ["body", "refine"] and "one or two axes" in e["msg"] and "3" in e["msg"]
    e = _error(client.post("/v1/sweeps", json={**SWEEP, "axes": {**AXES, "gamma_w": {"values": [1.5]}}}))
    assert e["loc"] == ["body", "axes", "gamma_w"] and "at least two" in e["msg"]
    _nothing_stored(client)


def test_a_budget_over_the_grid_limit(embedded_settings: Settings) -> None:
    with make_client(embedded_settings.model_copy(update={"max_grid_points": 20})) as c:
        e = _error(c.post("/v1/sweeps", json=SWEEP))
        assert e["loc"] == ["body", "refine", "budget"]
        assert e["msg"] == "budget = 12 with the 9 grid points is over the limit of 20 points"
        assert c.post("/v1/sweeps", json={**SWEEP, "refine": {**REFINE, "budget": 11}}).status_code == 202


def _run_everything(settings: Settings, ids: list[str]) -> list[str]:
    """Run these runs as a worker does, then start the next round; the new round's run ids."""
    assert set(execute_batch([uuid.UUID(i) for i in ids], settings).values()) == {"succeeded"}
    sent = Sent()
    after_runs(settings, sent, [uuid.UUID(i) for i in ids])
    return sent.ids


def test_rounds_show_in_the_sweep_the_table_and_the_phase_diagram(client: TestClient,
                                                                  embedded_settings: Settings) -> None:
    created = client.post("/v1/sweeps", json={**SWEEP, "name": "refined"}).json()
    sid = created["id"]
    sweep = client.get(f"/v1/sweeps/{sid}").json()
    assert sweep["status"] == "queued" and sweep["total"] == 9
    assert sweep["refine"] == {**REFINE, "round": 0, "points": [9], "added": 0, "state": "refining"}
    listed = client.get("/v1/sweeps").json()["items"]
    assert listed[0]["refine"]["state"] == "refining"

    coarse = client.get(f"/v1/sweeps/{sid}/table").json()["run_id"]
    first = _run_everything(embedded_settings, coarse)
    sweep = client.get(f"/v1/sweeps/{sid}").json()
    assert sweep["status"] == "running" and sweep["total"] == 9 + len(first) > 9
    assert sweep["refine"]["round"] == 1 and sweep["refine"]["points"] == [9, len(first)]
    assert sweep["progress"] == {"finished": 9, "total": 9 + len(first), "fraction": 9 / (9 + len(first))}

    second = _run_everything(embedded_settings, first)
    assert _run_everything(embedded_settings, second) == []
    sweep = client.get(f"/v1/sweeps/{sid}").json()
    n = 9 + len(first) + len(second)
    assert sweep["status"] == "finished" and sweep["counts"]["succeeded"] == sweep["total"] == n
    assert sweep["refine"] == {**REFINE, "round": 2, "points": [9, len(first), len(second)],
                               "added": len(first) + len(second), "state": "done"}
    assert len(first) + len(second) <= REFINE["budget"]

    # the table: the grid in grid order, then the added points in increasing order
    table = client.get(f"/v1/sweeps/{sid}/table").json()
    points = list(zip(table["gamma_sigma2"], table["gamma_w"], strict=True))
    assert len(points) == len(set(points)) == n and points[:9] == GRID
    assert points[9:] == sorted(points[9:]) and not set(points[9:]) & set(GRID)
    assert all(v is not None for v in table["gd.min_test_error"])
    # the phase diagram on the refined mesh, said so in its title
    r = client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"format": "svg"})
    assert r.status_code == 200 and b"nearest point" in r.content
    assert client.get(f"/v1/sweeps/{sid}/phase-diagram").content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.post(f"/v1/sweeps/{sid}/cancel").status_code == 409


def test_cancel_between_rounds_stops_the_refinement(client: TestClient, embedded_settings: Settings) -> None:
    sid = client.post("/v1/sweeps", json=SWEEP).json()["id"]
    coarse = client.get(f"/v1/sweeps/{sid}/table").json()["run_id"]
    assert set(execute_batch([uuid.UUID(i) for i in coarse], embedded_settings).values()) == {"succeeded"}
    # every run finished, the next round not started yet: still running
    assert client.get(f"/v1/sweeps/{sid}").json()["status"] == "running"
    r = client.post(f"/v1/sweeps/{sid}/cancel")
    assert r.status_code == 200, r.text
    sweep = r.json()
    assert sweep["status"] == "cancelled" and sweep["refine"]["state"] == "cancelled"
    assert sweep["counts"]["succeeded"] == 9 and sweep["total"] == 9
    sent = Sent()
    assert after_runs(embedded_settings, sent, [uuid.UUID(i) for i in coarse]) == 0 and sent.ids == []
    assert client.post(f"/v1/sweeps/{sid}/cancel").status_code == 409


def test_heat_map_cells_of_a_refined_mesh_take_the_nearest_point() -> None:
    table = pd.DataFrame({"x": [0.0, 1.0, 0.0, 1.0, 0.3, 0.3], "y": [0.0, 0.0, 1.0, 1.0, 0.2, 0.6],
                          "m": [1.0, 2.0, 3.0, 4.0, 5.0, None]})
    xs, ys, grid = grid_of(table, "x", "y", "m", nearest=True)
    assert list(xs) == [0.0, 0.3, 1.0] and list(ys) == [0.0, 0.2, 0.6, 1.0]
    # rows: y = 0, 0.2, 0.6, 1; columns: x = 0, 0.3, 1 (distances in units of each axis's range, here 1)
    expected = np.array([[1.0, 5.0, 2.0],  # (0.3, 0): 0.04 from (0.3, 0.2), 0.09 from (0, 0)
                         [1.0, 5.0, 2.0],  # (0, 0.2): 0.04 from (0, 0), 0.09 from (0.3, 0.2)
                         [np.nan, np.nan, 4.0],  # (0, 0.6): nearest (0.3, 0.6), which has no value: masked
                         [3.0, 3.0, 4.0]])  # (0.3, 1): 0.09 from (0, 1), 0.16 from (0.3, 0.6)
    np.testing.assert_array_equal(np.ma.filled(grid, np.nan), expected)
    assert grid.mask.tolist()[2] == [True, True, False]
    # without nearest, a cell that is not a point is missing
    _, _, plain = grid_of(table, "x", "y", "m")
    assert plain.mask.sum() == 12 - 5

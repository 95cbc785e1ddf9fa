"""Exports: the format by ?format= or the Accept header; the spectrum on request."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from core import Settings
from dynamics import SimulationRequest, simulate
from workers.tasks import execute_run

BODY = {"d": 8, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 12, "spectrum_every": 4,
        "dynamics": ["gd", "lazy"]}  # fmt: skip


@pytest.fixture
def run_id(client: TestClient, embedded_settings: Settings) -> str:
    rid = client.post("/v1/runs", json=BODY).json()["id"]
    assert execute_run(uuid.UUID(rid), embedded_settings) == "succeeded"
    return str(rid)


@pytest.mark.parametrize(
    ("accept", "media"),
    [
        ("text/csv", "text/csv"),
        ("application/vnd.apache.parquet", "application/vnd.apache.parquet"),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        ("", "application/json"),
        ("text/html;q=0.9, text/csv;q=0.5", "text/csv"),
        ("application/json;q=0.2, text/csv", "text/csv"),
    ],
)
def test_accept_header_chooses_the_format(client: TestClient, run_id: str, accept: str, media: str) -> None:
    r = client.get(f"/v1/runs/{run_id}/trajectory", headers={"Accept": accept})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(media)


def test_format_parameter_wins_and_unknown_accept_is_406(client: TestClient, run_id: str) -> None:
    r = client.get(f"/v1/runs/{run_id}/trajectory", params={"format": "csv"}, headers={"Accept": "application/json"})
    assert r.headers["content-type"].startswith("text/csv")
    r = client.get(f"/v1/runs/{run_id}/trajectory", headers={"Accept": "image/png"})
    assert r.status_code == 406 and "text/csv" in r.json()["detail"]
    r = client.get(f"/v1/runs/{run_id}/trajectory", params={"format": "xml"})
    assert r.status_code == 422


def test_spectrum_columns_equal_the_simulated_singular_values(client: TestClient, run_id: str) -> None:
    expected = simulate(SimulationRequest.model_validate(BODY)).trajectories["gd"]
    data = client.get(f"/v1/runs/{run_id}/trajectory", params={"spectrum": "true", "dynamics": "gd"}).json()
    assert [f"s_{j}" for j in range(1, 9)] == [c for c in data if c.startswith("s_")]
    steps = data["step"]
    for j, step in enumerate(expected.spectrum_steps.tolist()):
        row = steps.index(step)
        got = [data[f"s_{i}"][row] for i in range(1, 9)]
        np.testing.assert_array_equal(got, expected.spectrum[j])
    assert data["s_1"][steps.index(1)] is None  # no spectrum at step 1 (spectrum_every = 4)

    table = pq.read_table(io.BytesIO(client.get(
        f"/v1/runs/{run_id}/trajectory", params={"spectrum": "true", "format": "parquet", "dynamics": "gd"}
    ).content)).to_pandas()  # fmt: skip
    np.testing.assert_array_equal(np.stack(table[table.step == 4].spectrum.to_list()), expected.spectrum[1:2])
    csv = client.get(f"/v1/runs/{run_id}/trajectory", params={"spectrum": "true", "format": "csv"}).text
    assert csv.splitlines()[0].endswith(",s_7,s_8")


def test_sweep_table_follows_accept(client: TestClient) -> None:
    sid = client.post("/v1/sweeps", json={"base": {**BODY, "gamma_w": None, "width": 70},
                                          "axes": {"seed": {"values": [0, 1]}}}).json()["id"]  # fmt: skip
    r = client.get(f"/v1/sweeps/{sid}/table", headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0].startswith("seed,")

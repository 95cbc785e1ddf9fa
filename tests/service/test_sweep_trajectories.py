"""GET /v1/sweeps/{id}/trajectories: every finished run's trajectory in one streamed response (run_id first,
runs in grid order), equal to each run's own trajectory; the same table in JSON, CSV and Parquet whatever the
batches; runs without a trajectory left out; bad dynamics and formats are 422."""

from __future__ import annotations

import io
import uuid

import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

import service.trajectory
from dynamics import TRAJECTORY_COLUMNS
from core import Settings
from tests.service.test_sweeps import GRID, SWEEP, _tasks
from workers.tasks import execute_batch


def _finish(embedded_settings: Settings, only: int | None = None) -> list[str]:
    """Run the sweep's queued tasks (the first ``only`` of them); the ids of the runs that ran."""
    ran = []
    for _, _, ids in _tasks(embedded_settings)[:only]:
        assert set(execute_batch([uuid.UUID(i) for i in ids], embedded_settings).values()) == {"succeeded"}
        ran += ids
    return ran


def test_every_trajectory_in_one_response_equals_each_runs_own(
    client: TestClient, embedded_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = client.post("/v1/sweeps", json=SWEEP).json()["id"]
    _finish(embedded_settings)
    monkeypatch.setattr(service.trajectory, "rows_per_batch", lambda n_columns: 7)  # batches cross runs
    url = f"/v1/sweeps/{sid}/trajectories"
    got = client.get(url).json()
    assert list(got) == ["run_id", *TRAJECTORY_COLUMNS]
    order = client.get(f"/v1/sweeps/{sid}/table").json()["run_id"]  # grid order
    assert list(dict.fromkeys(got["run_id"])) == order and len(order) == len(GRID)
    expected: dict[str, list] = {c: [] for c in got}
    for rid in order:
        own = client.get(f"/v1/runs/{rid}/trajectory").json()
        expected["run_id"] += [rid] * len(own["step"])
        for c in TRAJECTORY_COLUMNS:
            expected[c] += own[c]
    assert got == expected

    parquet = client.get(url, params={"format": "parquet"})
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    assert 'filename="trajectories-' in parquet.headers["content-disposition"]
    pfile = pq.ParquetFile(io.BytesIO(parquet.content))
    assert pfile.metadata.num_row_groups == -(-len(got["step"]) // 7)  # a row group per 7-row batch
    assert pfile.read().to_pydict() == got
    frame = pd.read_csv(io.StringIO(client.get(url, params={"format": "csv"}).text))
    pd.testing.assert_frame_equal(frame, pd.DataFrame(got).astype({c: float for c in TRAJECTORY_COLUMNS[2:]}))

    only_gd = client.get(url, params={"dynamics": "gd"}).json()
    assert set(only_gd["dynamics"]) == {"gd"} and len(only_gd["step"]) == got["dynamics"].count("gd")


def test_only_finished_runs_and_errors(client: TestClient, embedded_settings: Settings) -> None:
    sid = client.post("/v1/sweeps", json=SWEEP).json()["id"]
    url = f"/v1/sweeps/{sid}/trajectories"
    assert client.get(url).json() == {c: [] for c in ["run_id", *TRAJECTORY_COLUMNS]}  # nothing finished yet
    empty = pq.read_table(io.BytesIO(client.get(url, params={"format": "parquet"}).content))
    assert empty.num_rows == 0 and empty.column_names == ["run_id", *TRAJECTORY_COLUMNS]
    ran = _finish(embedded_settings, only=1)
    assert set(client.get(url).json()["run_id"]) == set(ran) and len(ran) < len(GRID)

    r = client.get(url, params={"dynamics": "lazy"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "dynamics" and "lazy" in r.text
    r = client.get(url, params={"format": "xml"})
    assert r.status_code == 422 and "format" in r.text
    assert client.get(f"/v1/sweeps/{uuid.uuid4()}/trajectories").status_code == 404

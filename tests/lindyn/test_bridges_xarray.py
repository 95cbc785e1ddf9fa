"""lindyn.bridges.xarray without a server (httpx.MockTransport serving a sweep, its table and trajectories
as the API does): the Dataset's dimensions, coordinates (the sweep's axis order, not sorted), values exactly
those of the table, NaN and "" where a point has not finished, attributes; NetCDF round trip (h5netcdf);
trajectories with a step dimension; a clear error naming the extra when xarray is missing. (Against the
real service: tests/e2e/test_bridges.py.)"""

from __future__ import annotations

import builtins
import io
import json
import math
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynamics import METRIC_COLUMNS
from lindyn import Client

import xarray as xr  # noqa: E402

SID = "22222222-2222-2222-2222-222222222222"
BASE = {"d": 12, "rank": 2, "steps": 30, "dynamics": ["gd", "self_consistent"]}
AXES = {"gamma_w": [2.0, 1.0], "seed": [0, 1, 2]}  # not sorted: the sweep's order is kept
#: the table in grid order; the point (1.0, 2) has not finished
ROWS = [(w, s) for w in AXES["gamma_w"] for s in AXES["seed"]]
UNFINISHED = (1.0, 2)


def _table() -> dict[str, list[Any]]:
    t: dict[str, list[Any]] = {"gamma_w": [], "seed": [], "run_id": [], "status": []}
    for name in ("gd", "self_consistent"):
        t[f"{name}.min_test_error"] = []
        t[f"{name}.min_test_error_step"] = []
        t[f"{name}.stop_reason"] = []
    t["log_max_distance"] = []
    for i, (w, s) in enumerate(ROWS):
        done = (w, s) != UNFINISHED
        t["gamma_w"].append(w)
        t["seed"].append(s)
        t["run_id"].append(f"run-{i}")
        t["status"].append("succeeded" if done else "queued")
        for j, name in enumerate(("gd", "self_consistent")):
            t[f"{name}.min_test_error"].append(0.1 * i + 0.01 * j + math.pi / 1e3 if done else None)
            t[f"{name}.min_test_error_step"].append(10 * i + j if done else None)
            t[f"{name}.stop_reason"].append("steps" if done else None)
        t["log_max_distance"].append(-5.0 - i if done else None)
    return t


TYPES = {"gamma_w": pa.float64(), "seed": pa.int64(), "run_id": pa.string(), "status": pa.string(),
         "log_max_distance": pa.float64()}  # fmt: skip


def _type(column: str) -> pa.DataType:
    if column in TYPES:
        return TYPES[column]
    return {"min_test_error": pa.float64(), "min_test_error_step": pa.int64(), "stop_reason": pa.string()}[
        column.split(".", 1)[1]
    ]


def _trajectories() -> dict[str, list[Any]]:
    """Runs 0 and 4 finished with different recorded steps (0, 10, 20 and 0, 5)."""
    out: dict[str, list[Any]] = {c: [] for c in ("run_id", "dynamics", "step", *METRIC_COLUMNS)}
    for run, steps in (("run-0", [0, 10, 20]), ("run-4", [0, 5])):
        for name in ("gd", "self_consistent"):
            for step in steps:
                out["run_id"].append(run)
                out["dynamics"].append(name)
                out["step"].append(step)
                for k, c in enumerate(list(out)[3:]):
                    out[c].append(step + 0.5 * k + (0.25 if name == "gd" else 0.0))
    return out


def _parquet(columns: dict[str, list[Any]], types: dict[str, pa.DataType]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table(columns, schema=pa.schema([(c, types[c]) for c in columns])), sink)
    return sink.getvalue()


def _client(requests: list[str]) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        if request.url.path == f"/v1/sweeps/{SID}":
            return httpx.Response(200, json={"id": SID, "name": "small", "status": "running", "total": 6,
                                             "axes": AXES, "base": BASE, "tags": {"project": "phase"}})  # fmt: skip
        if request.url.path == f"/v1/sweeps/{SID}/table":
            t = _table()
            return httpx.Response(200, content=_parquet(t, {c: _type(c) for c in t}))
        if request.url.path == f"/v1/sweeps/{SID}/trajectories":
            assert request.url.params["format"] == "parquet"
            t = _trajectories()
            return httpx.Response(200, content=_parquet(t, {c: pa.float64() for c in t} | {
                "run_id": pa.string(), "dynamics": pa.string(), "step": pa.int64()}))  # fmt: skip
        return httpx.Response(404, json={"detail": "not found"})

    return Client("http://lindyn.test", transport=httpx.MockTransport(handler))


def test_the_dataset_is_the_table_on_the_grid(tmp_path: Any) -> None:
    requests: list[str] = []
    sweep = _client(requests).get_sweep(SID)
    ds = sweep.dataset()
    assert requests == [f"/v1/sweeps/{SID}", f"/v1/sweeps/{SID}/table"]  # the sweep, then its table: two
    assert dict(ds.sizes) == {"gamma_w": 2, "seed": 3, "dynamics": 2}
    assert ds["gamma_w"].values.tolist() == [2.0, 1.0] and ds["seed"].values.tolist() == [0, 1, 2]
    assert ds["dynamics"].values.tolist() == ["gd", "self_consistent"]
    assert ds["min_test_error"].dims == ("gamma_w", "seed", "dynamics")
    assert ds["log_max_distance"].dims == ("gamma_w", "seed")
    table = _table()
    for i, (w, s) in enumerate(ROWS):
        point = ds.sel(gamma_w=w, seed=s)
        assert point["run_id"].item() == f"run-{i}" and point["status"].item() == table["status"][i]
        for name in ("gd", "self_consistent"):
            got = point.sel(dynamics=name)
            if (w, s) == UNFINISHED:
                assert math.isnan(got["min_test_error"].item()) and math.isnan(got["min_test_error_step"].item())
                assert got["stop_reason"].item() == ""
            else:
                assert got["min_test_error"].item() == table[f"{name}.min_test_error"][i]  # exact
                assert got["min_test_error_step"].item() == table[f"{name}.min_test_error_step"][i]
                assert got["stop_reason"].item() == "steps"
        lmd = point["log_max_distance"].item()
        assert math.isnan(lmd) if (w, s) == UNFINISHED else lmd == table["log_max_distance"][i]
    assert ds.attrs["sweep_id"] == SID and ds.attrs["name"] == "small"
    assert json.loads(ds.attrs["base_request"]) == BASE and json.loads(ds.attrs["tags"]) == {"project": "phase"}

    # NetCDF through h5netcdf (the xarray extra), read back the same
    path = tmp_path / "sweep.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    back = xr.load_dataset(path, engine="h5netcdf")
    xr.testing.assert_identical(back, ds)


def test_trajectories_with_a_step_dimension() -> None:
    requests: list[str] = []
    sweep = _client(requests).get_sweep(SID)
    frame = sweep.trajectories()
    assert list(frame.columns[:3]) == ["run_id", "dynamics", "step"] and len(frame) == 10
    ds = sweep.trajectories(dataset=True)
    assert dict(ds.sizes) == {"gamma_w": 2, "seed": 3, "dynamics": 2, "step": 4}
    assert ds["step"].values.tolist() == [0, 5, 10, 20]
    assert "rank" in ds and "train_error" in ds  # no axis is called rank here
    values = _trajectories()
    for k in range(len(values["step"])):
        i = int(values["run_id"][k].split("-")[1])
        w, s = ROWS[i]
        got = ds["test_error"].sel(gamma_w=w, seed=s, dynamics=values["dynamics"][k], step=values["step"][k])
        assert got.item() == values["test_error"][k]
    # steps a run did not record, and runs without a trajectory, are NaN
    assert np.isnan(ds["test_error"].sel(gamma_w=2.0, seed=0, step=5)).all()
    assert np.isnan(ds["test_error"].sel(gamma_w=1.0, seed=2)).all()
    assert int(np.isfinite(ds["test_error"]).sum()) == 10


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_xarray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "xarray" or name.startswith("xarray."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_xarray)
    monkeypatch.delitem(__import__("sys").modules, "xarray")
    with pytest.raises(ImportError, match=r"pip install 'lindyn\[xarray\]'"):
        _client([]).get_sweep(SID).dataset()

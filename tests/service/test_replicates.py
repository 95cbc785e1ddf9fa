"""Replicates and slices of a sweep (issue #15 item 2): the table aggregated over seed axes (mean, sd, n of
every numeric metric per remaining grid point, checked against Python's statistics module on the rows of the
plain table), slices with at=axis:value, phase diagrams averaged over the replicates (an sd panel on request),
one remaining axis as a line plot with error bars, three axes sliced; the 422s name `replicates`, `at` or
`aggregate`. The workers' batch task runs the grid points in process (SQLite)."""

from __future__ import annotations

import statistics
import uuid
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core import Settings
from dynamics.result import METRICS
from service.replicates import COUNTS, STATISTICS, aggregated, view
from workers.tasks import execute_batch

BASE = {"d": 10, "rank": 2, "steps": 15, "dynamics": ["gd", "self_consistent"], "stopping": "paper"}
SVG = "{http://www.w3.org/2000/svg}"


def submit(client: TestClient, axes: dict[str, Any], **extra: Any) -> str:
    r = client.post("/v1/sweeps", json={"base": {**BASE, **extra.pop("base", {})}, "axes": axes, **extra})
    assert r.status_code == 202, r.text
    return r.json()["id"]


def run_all(client: TestClient, settings: Settings, sid: str, limit: int | None = None) -> list[str]:
    ids = client.get(f"/v1/sweeps/{sid}/table").json()["run_id"][:limit]
    outcome = execute_batch([uuid.UUID(i) for i in ids], settings)
    assert set(outcome.values()) == {"succeeded"}, outcome
    return ids


def svg_of(r: Any) -> tuple[str, set[str]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(r.content)
    texts = "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    ids = {el.get("id") or "" for el in root.iter()}
    return texts, {i for i in ids if i.startswith(("heat-map-", "line-", "error-bars-", "theory-"))}


def test_seed_axes_are_replicates_by_default_and_others_can_be_named(client: TestClient) -> None:
    gs = {"gamma_sigma2": {"values": [-2.0, -1.5]}}
    sid = submit(client, {**gs, "seed": {"values": [0, 1]}, "task_seed": {"values": [3, 4]}}, base={"gamma_w": 2.0})
    assert client.get(f"/v1/sweeps/{sid}").json()["replicates"] == ["seed", "task_seed"]
    named = submit(client, {"gamma_w": {"values": [1.5, 2.0]}, "seed": {"values": [0, 1]}},
                   base={"gamma_sigma2": -1.5}, replicates=["gamma_w"])
    assert client.get(f"/v1/sweeps/{named}").json()["replicates"] == ["gamma_w"]
    none = submit(client, {**gs, "seed": {"values": [0, 1]}}, base={"gamma_w": 2.0}, replicates=[])
    listed = {s["id"]: s for s in client.get("/v1/sweeps").json()["items"]}
    assert listed[none]["replicates"] == [] and listed[sid]["replicates"] == ["seed", "task_seed"]


@pytest.mark.parametrize(("replicates", "says"), [
    (["width"], "'width' is not an axis of this sweep (its axes: gamma_sigma2, seed)"),
    (["seed", "seed"], "an axis is named twice"),
])
def test_replicates_must_be_axes(client: TestClient, replicates: list[str], says: str) -> None:
    r = client.post("/v1/sweeps", json={"base": {**BASE, "gamma_w": 2.0}, "replicates": replicates,
                                        "axes": {"gamma_sigma2": {"values": [-2.0]}, "seed": {"values": [0, 1]}}})
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["field"] == "replicates" and err["loc"] == ["body", "replicates"] and says in err["msg"]
    assert client.get("/v1/sweeps").json()["total"] == 0  # nothing stored


def test_table_aggregated_over_seed_matches_the_rows(client: TestClient, embedded_settings: Settings) -> None:
    axes = {"gamma_w": {"values": [1.5, 2.25]}, "seed": {"values": [0, 1, 2]}}
    sid = submit(client, axes, base={"gamma_sigma2": -1.5})
    run_all(client, embedded_settings, sid, limit=5)  # the last point (gamma_w 2.25, seed 2) stays queued
    rows = client.get(f"/v1/sweeps/{sid}/table").json()
    agg = client.get(f"/v1/sweeps/{sid}/table", params={"aggregate": "seed"}).json()
    metrics = [c for c in rows if METRICS.get(c.rsplit(".", 1)[-1]) and METRICS[c.rsplit(".", 1)[-1]].numeric]
    assert "gd.min_test_error" in metrics and "log_max_distance" in metrics and "gd.stop_reason" not in metrics
    expected_columns = ["gamma_w", *COUNTS, *(f"{m}.{s}" for m in metrics for s in STATISTICS)]
    assert list(agg) == expected_columns  # every numeric metric of the catalogue, no run_id/status/stop_reason
    assert agg["gamma_w"] == [1.5, 2.25] and agg["runs"] == [3, 3] and agg["finished"] == [3, 2]
    assert agg["diverged"] == [0, 0]
    for j, gw in enumerate(agg["gamma_w"]):
        for m in metrics:
            values = [v for g, v in zip(rows["gamma_w"], rows[m], strict=True) if g == gw and v is not None]
            assert agg[f"{m}.n"][j] == len(values)
            if not values:  # diverged_step: no run diverged
                assert agg[f"{m}.mean"][j] is None and agg[f"{m}.sd"][j] is None
                continue
            # reference: Python's statistics (exact summation); float64 mean/sd of 2-3 values agree to ~1e-15
            # relative, 1e-12 leaves room for the sd's cancellation on nearly equal values
            assert agg[f"{m}.mean"][j] == pytest.approx(statistics.fmean(values), rel=1e-12, abs=0)
            assert agg[f"{m}.sd"][j] == pytest.approx(statistics.stdev(values), rel=1e-12, abs=1e-300)
    # seeds differ in the initialisation: the spread is real
    assert agg["gd.min_test_error.sd"][0] > 0
    # CSV and Parquet carry the same columns
    csv = client.get(f"/v1/sweeps/{sid}/table", params={"aggregate": "seed", "format": "csv"}).text
    assert csv.splitlines()[0].split(",") == expected_columns


def test_sd_of_one_value_is_null_and_nothing_finished_is_n_zero() -> None:
    columns = {"gamma_w": [1.0, 1.0, 2.0, 2.0], "seed": [0, 1, 0, 1], "run_id": list("abcd"),
               "status": ["succeeded", "failed", "queued", "cancelled"],
               "gd.min_test_error": [0.5, None, None, None], "gd.stop_reason": ["plateau", None, None, None]}
    import pyarrow as pa

    types = {c: pa.float64() for c in columns}
    out, out_types = aggregated(columns, types, ["gamma_w", "seed"], ["seed"])
    assert out["gamma_w"] == [1.0, 2.0] and out["runs"] == [2, 2] and out["finished"] == [1, 0]
    assert out["gd.min_test_error.mean"] == [0.5, None] and out["gd.min_test_error.sd"] == [None, None]
    assert out["gd.min_test_error.n"] == [1, 0] and "gd.stop_reason.mean" not in out
    assert out_types["gd.min_test_error.n"] == pa.int64()


def test_at_slices_with_a_relative_tolerance(client: TestClient) -> None:
    sid = submit(client, {"gamma_sigma2": {"linspace": [-2.0, -1.0, 3]}, "gamma_w": {"values": [1.5, 2.0]},
                          "d": {"values": [8, 12]}})
    r = client.get(f"/v1/sweeps/{sid}/table", params={"at": "d:12"}).json()
    assert r["d"] == [12] * 6 and r["gamma_w"] == [1.5, 2.0] * 3
    # a value typed in decimal matches the float the axis holds (1e-9 relative)
    near = client.get(f"/v1/sweeps/{sid}/table", params=[("at", "gamma_sigma2:-1.5000000001"), ("at", "d:8")])
    assert near.json()["gamma_sigma2"] == [-1.5, -1.5] and near.json()["d"] == [8, 8]
    both = client.get(f"/v1/sweeps/{sid}/table", params={"at": "d:12", "aggregate": "gamma_w"}).json()
    assert both["gamma_sigma2"] == [-2.0, -1.5, -1.0] and both["d"] == [12] * 3 and both["runs"] == [2] * 3


@pytest.mark.parametrize(("params", "field", "says"), [
    ({"at": "width:3"}, "at", "'width' is not an axis of this sweep (its axes: gamma_w, seed)"),
    ({"at": "gamma_w:1.6"}, "at", "1.6 is not a value of axis gamma_w (its values: 1.5, 2.0)"),
    ({"at": "gamma_w"}, "at", "expected axis:value"),
    ({"at": "gamma_w:x"}, "at", "'x' is not a number"),
    ({"at": ["seed:0", "seed:1"]}, "at", "sliced twice"),
    ({"aggregate": "d"}, "aggregate", "'d' is not an axis of this sweep"),
    ({"aggregate": "seed", "at": "seed:0"}, "aggregate", "both sliced (at) and averaged over"),
])
def test_table_view_errors_name_the_parameter(client: TestClient, params: dict[str, Any], field: str, says: str) -> None:
    sid = submit(client, {"gamma_w": {"values": [1.5, 2.0]}, "seed": {"values": [0, 1]}}, base={"gamma_sigma2": -1.5})
    for path in ("table", "phase-diagram"):
        r = client.get(f"/v1/sweeps/{sid}/{path}", params=params)
        assert r.status_code == 422, (path, r.text)
        (err,) = r.json()["detail"]
        assert err["field"] == field and err["loc"] == ["query", field] and says in err["msg"], err


def test_phase_diagram_averages_over_seed_with_an_sd_panel(client: TestClient, embedded_settings: Settings) -> None:
    axes = {"gamma_sigma2": {"values": [-2.0, -1.0]}, "gamma_w": {"values": [1.5, 2.0]}, "seed": {"values": [0, 1]}}
    sid = submit(client, axes)
    run_all(client, embedded_settings, sid)
    texts, drawn = svg_of(client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"format": "svg"}))
    assert drawn >= {"heat-map-gd.min_test_error.mean", "theory-active-lazy"}
    assert "heat-map-gd.min_test_error.sd" not in drawn
    assert "mean of minimal test error" in texts and "averaged over seed (2 per point)" in texts
    texts, drawn = svg_of(client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"format": "svg", "sd": "true"}))
    assert {"heat-map-gd.min_test_error.mean", "heat-map-gd.min_test_error.sd"} <= drawn
    assert "sd of minimal test error" in texts
    four = svg_of(client.get(f"/v1/sweeps/{sid}/phase-diagram",
                             params={"format": "svg", "sd": "true", "metric": "figure2"}))[1]
    assert {"heat-map-log_max_distance.mean", "heat-map-log_max_distance.sd",
            "heat-map-gd.stable_rank_at_min.sd"} <= four
    # one seed, sliced: the plain heat map of those runs
    texts, drawn = svg_of(client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"format": "svg", "at": "seed:1"}))
    assert "heat-map-gd.min_test_error" in drawn and "at seed = 1" in texts and "mean of" not in texts
    # aggregate= (empty) opts out of averaging: three axes left, a 422 that says to slice
    r = client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"aggregate": ""})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "at"
    assert "slice the others with at=axis:value" in r.json()["detail"][0]["msg"]


def test_one_remaining_axis_is_a_line_plot_with_error_bars(client: TestClient, embedded_settings: Settings) -> None:
    sid = submit(client, {"gamma_w": {"values": [1.5, 2.0, 2.5]}, "seed": {"values": [0, 1, 2]}},
                 base={"gamma_sigma2": -1.5})
    run_all(client, embedded_settings, sid)
    texts, drawn = svg_of(client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"format": "svg"}))
    assert drawn == {"line-gd.min_test_error.mean", "error-bars-gd.min_test_error.mean"}
    assert "averaged over seed (3 per point)" in texts and "γ_w (w = d^γ_w)" in texts
    four = svg_of(client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"format": "svg", "metric": "figure2"}))[1]
    assert "line-log_max_distance.mean" in four and "error-bars-gd.min_test_error_step.mean" in four
    # a one-axis sweep without replicates: a plain line (it was a 422 "needs two axes")
    one = submit(client, {"gamma_w": {"values": [1.5, 2.0]}}, base={"gamma_sigma2": -1.5})
    run_all(client, embedded_settings, one)
    assert svg_of(client.get(f"/v1/sweeps/{one}/phase-diagram", params={"format": "svg"}))[1] == {
        "line-gd.min_test_error"}
    # everything averaged: nothing left to draw over
    only_seed = submit(client, {"seed": {"values": [0, 1]}}, base={"gamma_sigma2": -1.5, "gamma_w": 2.0})
    r = client.get(f"/v1/sweeps/{only_seed}/phase-diagram")
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "aggregate"


def test_three_axes_are_sliced_for_a_heat_map(client: TestClient, embedded_settings: Settings) -> None:
    axes = {"gamma_sigma2": {"values": [-2.0, -1.0]}, "gamma_w": {"values": [1.5, 2.0]}, "d": {"values": [8, 10]}}
    sid = submit(client, axes)
    r = client.get(f"/v1/sweeps/{sid}/phase-diagram")
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["field"] == "at" and "3 axes to draw (gamma_sigma2, gamma_w, d)" in err["msg"] and "at=d:8" in err["msg"]
    run_all(client, embedded_settings, sid)
    texts, drawn = svg_of(client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"format": "svg", "at": "d:10"}))
    # the slice fixes d, so the line w = k is known (ln 2 / ln 10 = 0.301: below the grid, said on the panel)
    assert "heat-map-gd.min_test_error" in drawn and "theory-outside-grid" in drawn
    assert "underparametrised: w = k (γ_w = ln k / ln d = 0.301)" in texts
    assert "(d = 10, k = 2)" in texts and "4 of 4 grid points finished" in texts
    # the heat map's values are those of the slice's runs
    sliced = client.get(f"/v1/sweeps/{sid}/table", params={"at": "d:10"}).json()
    full = client.get(f"/v1/sweeps/{sid}/table").json()
    assert sliced["gd.min_test_error"] == [v for d, v in zip(full["d"], full["gd.min_test_error"]) if d == 10]


def test_view_defaults_to_the_replicates_not_sliced() -> None:
    axes = {"gamma_w": [1.5, 2.0], "seed": [0, 1], "task_seed": [0, 1]}
    v = view(axes, ["seed:1"], None, replicates=["seed", "task_seed"])
    assert v.at == {"seed": 1} and v.aggregate == ["task_seed"] and v.remaining == ["gamma_w"]
    assert view(axes, [], ["task_seed", "seed"]).aggregate == ["seed", "task_seed"]  # the axes' order
    assert view(axes, [], []).remaining == ["gamma_w", "seed", "task_seed"]

"""service/grid.py as one piece (no database): grid order, the table's columns, the errors' text and kinds.
Runs are stand-ins with the attributes grid.py reads (models.Run's); the HTTP and database paths are in
test_sweeps.py."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from dynamics import Limits, SimulationRequest
from core.jobs import chunks
from service.grid import GridError, expand, grid_order, table
from service.schemas.sweeps import SweepCreate


def _run(request: dict[str, Any], dynamics: list[str], *, comparison: float | None = None,
         summaries: list[Any] | None = None) -> Any:
    return SimpleNamespace(
        id=uuid.uuid4(), status="succeeded", request=request, dynamics_list=dynamics, summaries=summaries or [],
        has_comparison=comparison is not None, log_max_distance=comparison,
    )


def test_grid_order_is_the_last_axis_fastest_and_strangers_last() -> None:
    axes = {"d": [4, 8], "seed": [0, 1, 2]}
    points = [(d, s) for d in (4, 8) for s in (0, 1, 2)]
    runs = [_run({"d": d, "seed": s, "rank": 1}, ["gd"]) for d, s in points]
    stranger = _run({"d": 5, "seed": 0}, ["gd"])
    shuffled = [runs[4], stranger, runs[2], runs[5], runs[0], runs[3], runs[1]]
    assert grid_order(axes, shuffled) == [*runs, stranger]


def test_table_without_self_consistent_has_no_distance_column() -> None:
    axes = {"seed": [0, 1]}
    s = SimpleNamespace(dynamics="gd", min_test_error=0.5, min_test_error_step=3, stable_rank_at_min=1.25,
                        rank_at_min=1, final_train_error=0.25, final_test_error=float("nan"), steps_run=9,
                        stop_reason="plateau", diverged_step=None)
    runs = [_run({"seed": 1}, ["gd"]), _run({"seed": 0}, ["gd"], summaries=[s])]
    columns, types = table(axes, runs)
    assert "log_max_distance" not in columns and "log_max_distance" not in types
    assert columns["seed"] == [0, 1]
    assert columns["run_id"] == [str(runs[1].id), str(runs[0].id)]
    assert columns["gd.min_test_error"] == [0.5, None]  # the run without summaries: null
    assert columns["gd.final_test_error"] == [None, None]  # NaN is null
    assert columns["gd.stop_reason"] == ["plateau", None]


def test_table_distance_is_null_without_a_comparison() -> None:
    axes = {"seed": [0, 1]}
    runs = [_run({"seed": 0}, ["gd", "self_consistent"], comparison=-2.5),
            _run({"seed": 1}, ["gd", "self_consistent"])]
    columns, _ = table(axes, runs)
    assert columns["log_max_distance"] == [-2.5, None]


def test_grid_errors_carry_the_kind_and_join_their_messages() -> None:
    body = SweepCreate(base={"d": 6, "rank": 1, "gamma_sigma2": -1.0, "gamma_w": 1.0},
                       axes={"steps": {"values": [-1, -2]}})
    with pytest.raises(GridError) as info:
        expand(body, Limits(), max_points=10)
    details = info.value.details
    assert [d["type"] for d in details] == ["greater_than_equal", "greater_than_equal"]
    assert [d["loc"] for d in details] == [["body", "axes", "steps"]] * 2
    assert str(info.value) == "; ".join(d["msg"] for d in details)
    assert details[0]["msg"].startswith("grid point steps = -1: ")


def test_chunks_one_per_size_by_default_and_lengths_must_match() -> None:
    requests = [SimulationRequest(d=4, rank=1, sigma2=0.1, width=4, seed=s, backend="numpy") for s in range(5)]
    ids = [uuid.uuid4() for _ in requests]
    assert chunks(ids, requests, size=10) == [("numpy", ids)]  # spread 1: one task
    assert chunks(ids, requests, size=10, spread=2) == [("numpy", ids[0::2]), ("numpy", ids[1::2])]
    with pytest.raises(ValueError):
        chunks(ids[:4], requests, size=10)


def test_points_are_checked_against_the_given_limits() -> None:
    body = SweepCreate(base={"d": 6, "rank": 1, "gamma_sigma2": -1.0, "gamma_w": 1.0},
                       axes={"steps": {"values": [10, 20]}})
    assert len(expand(body, Limits(), max_points=10).requests) == 2
    with pytest.raises(GridError) as info:
        expand(body, Limits(max_steps=15), max_points=10)
    assert [d["loc"] for d in info.value.details] == [["body", "axes", "steps"]]  # only steps = 20


def test_each_fault_of_the_base_is_reported_once() -> None:
    """Two faults of the base (negative noise, negative c_lr): each once, at the first point, not once per point."""
    body = SweepCreate(base={"d": 6, "rank": 1, "noise_std": -1.0, "lr_constant": -1.0, "gamma_sigma2": -1.0,
                             "gamma_w": 1.0},
                       axes={"seed": {"values": [0, 1, 2]}})
    with pytest.raises(GridError) as info:
        expand(body, Limits(), max_points=10)
    assert sorted(d["field"] for d in info.value.details) == ["lr_constant", "noise_std"]


def _axes_error(axes: dict[str, Any], max_points: int = 10) -> list[dict[str, Any]]:
    body = SweepCreate(base={"d": 6, "rank": 1, "gamma_sigma2": -1.0, "gamma_w": 1.0}, axes=axes)
    with pytest.raises(GridError) as info:
        expand(body, Limits(), max_points=max_points)
    return info.value.details


def test_axis_errors_name_the_axis_and_the_reason() -> None:
    (e,) = _axes_error({"dynamics": {"values": [1]}})
    assert (e["field"], e["loc"]) == ("dynamics", ["body", "axes", "dynamics"])
    assert e["msg"].startswith("dynamics is not a numeric request field; an axis is one of d, rank, ")
    (e,) = _axes_error({"gamma_w": {"values": [1.0]}, "width": {"values": [6]}})
    assert e["field"] == "gamma_w" and e["msg"] == "axes gamma_w and width give the same quantity twice: give one of them"
    (e,) = _axes_error({"seed": {"values": [0, 1]}, "steps": {"values": [1, 2, 3]}}, max_points=5)
    assert (e["field"], e["loc"]) == ("axes", ["body", "axes"])
    assert e["msg"] == "the grid has 6 points (2 x 3), over the limit of 5"
    (e,) = _axes_error({"d": {"values": [6, 6.0]}})
    assert e["field"] == "d" and e["msg"] == "axis d has the value 6 twice"


def test_a_grid_of_exactly_the_limit_is_accepted() -> None:
    body = SweepCreate(base={"d": 6, "rank": 1, "gamma_sigma2": -1.0, "gamma_w": 1.0},
                       axes={"seed": {"values": [0, 1]}, "steps": {"values": [1, 2, 3]}})
    grid = expand(body, Limits(), max_points=6)
    assert grid.axes == {"seed": [0, 1], "steps": [1, 2, 3]} and len(grid.requests) == 6
    assert [(r.seed, r.steps) for r in grid.requests] == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)]
    assert all("reason" not in d for d in _axes_error({"steps": {"values": [-1]}}))  # an internal key, not sent

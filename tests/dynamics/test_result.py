"""What a result serialises to (dynamics/result.py): the JSON summary, the long-format trajectory columns, the
NaN/inf -> null rule, and the catalogue read from the dataclasses' fields. Hand-built results, expected values
written out here (exact: nothing is computed, only copied and converted)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest

from dynamics.result import (
    COMPARISON_METRICS,
    METRIC_COLUMNS,
    METRICS,
    SUMMARY_METRICS,
    TRAJECTORY_COLUMNS,
    Comparison,
    Quantity,
    SimulationResult,
    Summary,
    Trajectory,
    _json_float,
    _quantity,
    quantities,
)


def _trajectory(steps: list[int], base: float) -> Trajectory:
    """Metric column j at row r is base + 10 j + r (distinct everywhere); the last train error is NaN."""
    n = len(steps)
    metrics = {c: np.array([base + 10 * j + r for r in range(n)], dtype=np.float64) for j, c in enumerate(METRIC_COLUMNS)}
    metrics["train_error"][-1] = np.nan
    return Trajectory(
        step=np.array(steps, dtype=np.int64), metrics=metrics,
        spectrum_steps=np.array([0], dtype=np.int64), spectrum=np.array([[3.0, 1.0]]),
    )


def _summary(steps_run: int, stop_reason: str, **kw: object) -> Summary:
    values: dict[str, object] = dict(
        min_test_error=0.25, min_test_error_step=3, stable_rank_at_min=1.5, rank_at_min=2, final_train_error=0.5,
        final_test_error=0.75, steps_run=steps_run, stop_reason=stop_reason,
    )
    values.update(kw)
    return Summary(**values)  # type: ignore[arg-type]


def _result() -> SimulationResult:
    return SimulationResult(
        request={"d": 2, "rank": 1},
        lr=0.125,
        threshold=0.5,
        regime={"regime": "lazy"},
        trajectories={"gd": _trajectory([0, 2, 4], 100.0), "lazy": _trajectory([0, 5], 200.0)},
        summaries={"gd": _summary(4, "max_steps"), "lazy": _summary(7, "diverged", diverged_step=7)},
        comparison=Comparison(np.array([0, 1]), np.array([0.5, 2.0]), max_distance=2.0, log_max_distance=math.log(2.0)),
        backend="numpy",
        device="cpu",
    )


def test_summary_dict_is_the_documented_json() -> None:
    res = _result()
    summary_gd = dict(
        min_test_error=0.25, min_test_error_step=3, stable_rank_at_min=1.5, rank_at_min=2, final_train_error=0.5,
        final_test_error=0.75, steps_run=4, stop_reason="max_steps", diverged_step=None,
    )
    expected = {
        "request": {"d": 2, "rank": 1},
        "lr": 0.125,
        "threshold": 0.5,
        "summaries": {"gd": summary_gd, "lazy": {**summary_gd, "steps_run": 7, "stop_reason": "diverged",
                                                 "diverged_step": 7}},
        "comparison": {"max_distance": 2.0, "log_max_distance": math.log(2.0)},
        "regime": {"regime": "lazy"},
        "backend": "numpy",
        "device": "cpu",
    }
    out = res.summary_dict()
    assert out == expected
    json.dumps(out, allow_nan=False)  # JSON as it is


def test_summary_dict_without_a_comparison_has_null() -> None:
    res = _result()
    res.comparison = None
    assert res.summary_dict()["comparison"] is None


def test_non_finite_summary_values_become_null_and_numpy_scalars_python_numbers() -> None:
    s = _summary(4, "diverged", min_test_error=np.float64(np.inf), final_train_error=float("nan"),
                 final_test_error=np.float32(0.5), min_test_error_step=np.int64(3), diverged_step=np.int64(4))
    out = s.as_dict()
    assert out["min_test_error"] is None and out["final_train_error"] is None
    assert out["final_test_error"] == 0.5 and type(out["final_test_error"]) is float
    assert out["min_test_error_step"] == 3 and type(out["min_test_error_step"]) is int
    assert out["diverged_step"] == 4 and type(out["diverged_step"]) is int
    assert list(out) == [q.name for q in SUMMARY_METRICS]
    c = Comparison(np.array([0]), np.array([0.0]), max_distance=0.0, log_max_distance=-math.inf)
    assert c.as_dict() == {"max_distance": 0.0, "log_max_distance": None}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.5, 1.5), (np.float64(-2.0), -2.0), (math.nan, None), (-math.inf, None), (np.float32(np.inf), None),
     (np.int32(7), 7), (3, 3), ("plateau", "plateau"), (None, None), (True, True)],
)
def test_json_float(value: object, expected: object) -> None:
    out = _json_float(value)
    assert out == expected and type(out) is type(expected)


def test_trajectory_columns_long_format() -> None:
    res = _result()
    cols = res.trajectory_columns()
    assert list(cols) == list(TRAJECTORY_COLUMNS)
    assert cols["dynamics"] == ["gd", "gd", "gd", "lazy", "lazy"]
    assert cols["step"] == [0, 2, 4, 0, 5] and all(type(s) is int for s in cols["step"])
    for j, c in enumerate(METRIC_COLUMNS):
        gd = [100.0 + 10 * j + r for r in range(3)]
        lazy = [200.0 + 10 * j + r for r in range(2)]
        if c == "train_error":  # the NaN of the last row is null
            gd[-1] = lazy[-1] = None  # type: ignore[call-overload]
        assert cols[c] == gd + lazy, c
    json.dumps(cols, allow_nan=False)


def test_trajectory_columns_of_some_dynamics() -> None:
    res = _result()
    cols = res.trajectory_columns(["lazy"])
    assert cols["dynamics"] == ["lazy", "lazy"] and cols["step"] == [0, 5]
    assert cols["test_error"] == [210.0, 211.0]
    assert res.trajectory_columns([]) == {c: [] for c in TRAJECTORY_COLUMNS}


def test_trajectory_length_diverged_and_steps_done() -> None:
    res = _result()
    assert len(res.trajectories["gd"]) == 3 and len(res.trajectories["lazy"]) == 2
    assert res.diverged  # lazy diverged
    assert res.steps_done == 7
    res.summaries["lazy"] = _summary(7, "plateau")
    assert not res.diverged
    res.summaries = {}
    assert res.steps_done is None and not res.diverged


def test_quantities_read_the_catalogued_fields() -> None:
    """quantities() on a dataclass declared here: fields made with _quantity, in order, with their types
    (an optional field: its base type, optional=True); other fields are not quantities."""

    @dataclass
    class Example:
        plain: np.ndarray
        error: float = _quantity("an error", "(1/d²)", lower_is_better=True)
        count: int = _quantity("a count")
        name: str = _quantity("a name", "label", lower_is_better=False)
        maybe: int | None = _quantity("an optional step", "iterations", default=None)

    got = quantities(Example)
    assert got == (
        Quantity("error", float, "an error", "(1/d²)", lower_is_better=True),
        Quantity("count", int, "a count"),
        Quantity("name", str, "a name", "label", lower_is_better=False),
        Quantity("maybe", int, "an optional step", "iterations", optional=True),
    )
    assert [q.numeric for q in got] == [True, True, False, True]
    assert [q.label for q in got] == ["an error [(1/d²)]", "a count", "a name [label]", "an optional step [iterations]"]
    assert Example(np.zeros(1), 0.1, 1, "x").maybe is None  # the default is passed on to the field


def test_the_catalogue() -> None:
    """The catalogue as the dataclasses declare it: every Summary field, Comparison's two scalars."""
    assert [q.name for q in SUMMARY_METRICS] == [
        "min_test_error", "min_test_error_step", "stable_rank_at_min", "rank_at_min", "final_train_error",
        "final_test_error", "steps_run", "stop_reason", "diverged_step",
    ]
    assert [q.name for q in SUMMARY_METRICS if q.optional] == ["diverged_step"]
    assert [q.name for q in COMPARISON_METRICS] == ["max_distance", "log_max_distance"]
    assert METRICS["min_test_error_step"] == Quantity(
        "min_test_error_step", int, "iterations until the minimal test error", "iterations"
    )
    assert METRICS["min_test_error"].lower_is_better is True and METRICS["rank_at_min"].lower_is_better is None

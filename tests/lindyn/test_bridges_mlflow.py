"""lindyn.bridges.mlflow's pure parts: log_batch calls within MLflow's limits, the metric history of a
trajectory (unrecorded values left out), a request as params. (The exporter against a real mlflow server:
tests/e2e/test_bridges.py.)"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lindyn.bridges.mlflow import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAGS_PER_BATCH,
    _batches,
    _params,
    history,
)


@pytest.mark.parametrize(("metrics", "params", "tags"), [(0, 0, 0), (2500, 30, 5), (10, 250, 120), (999, 1, 1)])
def test_batches_keep_every_item_within_the_limits(metrics: int, params: int, tags: int) -> None:
    calls = list(_batches(list(range(metrics)), list(range(params)), list(range(tags))))
    assert [m for ms, _, _ in calls for m in ms] == list(range(metrics))
    assert [p for _, ps, _ in calls for p in ps] == list(range(params))
    assert [t for _, _, ts in calls for t in ts] == list(range(tags))
    for ms, ps, ts in calls:
        assert len(ps) <= MAX_PARAMS_PER_BATCH and len(ts) <= MAX_TAGS_PER_BATCH
        assert len(ms) + len(ps) + len(ts) <= MAX_METRICS_PER_BATCH and (ms or ps or ts)
    # as few calls as the limits allow
    assert len(calls) == max(math.ceil((metrics + params + tags) / MAX_METRICS_PER_BATCH),
                             math.ceil(params / MAX_PARAMS_PER_BATCH), math.ceil(tags / MAX_TAGS_PER_BATCH))  # fmt: skip


def test_history_is_every_recorded_value_at_its_step() -> None:
    frame = pd.DataFrame({"run_id": ["r"] * 3, "dynamics": ["gd", "gd", "self_consistent"], "step": [0, 10, 0],
                          "test_error": [0.5, float("nan"), 0.25], "rank": [3.0, 2.0, math.inf]})  # fmt: skip
    got = history(frame, 1234, lambda key, value, stamp, step: (key, value, stamp, step))
    assert got == [("gd.test_error", 0.5, 1234, 0), ("self_consistent.test_error", 0.25, 1234, 0),
                   ("gd.rank", 3.0, 1234, 0), ("gd.rank", 2.0, 1234, 10),
                   ("self_consistent.rank", math.inf, 1234, 0)]  # fmt: skip


def test_a_request_as_params() -> None:
    assert _params({"d": 10, "gamma_w": 2.25, "dynamics": ["gd", "self_consistent"], "seed": None,
                    "extra": {"b": 1, "a": 2}}) == {  # fmt: skip
        "d": "10", "gamma_w": "2.25", "dynamics": "gd,self_consistent", "seed": "None", "extra": '{"a": 2, "b": 1}'
    }

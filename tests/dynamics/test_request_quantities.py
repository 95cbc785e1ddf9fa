"""The request's derived quantities and their boundaries (dynamics/request.py), written from their docstrings and
method.md: the numeric fields, the width rule (dense below 2d), the memory and result-size estimates, the regime
boundaries, the forms' consistency check, the problems' text. Exact integer / float arithmetic: equality."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import pytest
from pydantic import Field, ValidationError

from dynamics.request import (
    NUMERIC_FIELDS,
    FieldProblem,
    InvalidRequest,
    Limits,
    SimulationRequest,
    _consistent,
    _floor_width,
    _is_number,
    _power,
    numeric_type,
    parse_request,
    regime,
)


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [(int, int), (float, float), (int | None, int), (float | None, float),
     (Annotated[float, Field(allow_inf_nan=False)], float), (Annotated[float, Field()] | None, float),
     (str, None), (Literal["a", "b"], None), (bool | None, None)],
)
def test_numeric_type(annotation: object, expected: type | None) -> None:
    assert numeric_type(annotation) is expected


def test_the_numeric_fields() -> None:
    assert NUMERIC_FIELDS == {
        "d": int, "rank": int, "noise_std": float, "task_seed": int, "seed": int, "gamma_sigma2": float,
        "gamma_w": float, "sigma2": float, "width": int, "steps": int, "lr": float, "lr_constant": float,
        "record_every": int, "spectrum_every": int,
    }
    assert {name: numeric_type(f.annotation) for name, f in SimulationRequest.model_fields.items()
            if numeric_type(f.annotation)} == NUMERIC_FIELDS


def _req(**kw: object) -> SimulationRequest:
    base: dict[str, object] = dict(d=10, rank=2, sigma2=0.01)
    base.update(kw)
    return SimulationRequest(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("init", "width", "dense", "inner"),
    [("auto", 19, True, 19), ("auto", 20, False, 20), ("auto", 500, False, 20), ("dense", 19, True, 19),
     ("dense", 20, True, 20), ("dense", 21, True, 20), ("wishart", 20, False, 20), ("wishart", 33, False, 20)],
)
def test_dense_below_2d_and_the_inner_width(init: str, width: int, dense: bool, inner: int) -> None:
    """auto is dense iff w < 2d; GD runs on w columns when dense and w < 2d, else on the 2d of the reduction."""
    r = _req(init=init, width=width)
    assert r.uses_dense_init is dense
    assert r.inner_width == inner


@pytest.mark.parametrize(("dtype", "itemsize"), [("float64", 8), ("float32", 4)])
def test_dense_weight_bytes(dtype: str, itemsize: int) -> None:
    assert _req(width=7, dtype=dtype).dense_weight_bytes == 2 * 7 * 10 * itemsize


def test_estimated_bytes() -> None:
    """weights + per dynamics 8 bytes x (8 metric columns x rows + d x spectrum rows), rows = steps // every + 2."""
    dense = _req(width=7, init="dense", steps=23, record_every=4, spectrum_every=5, dynamics=["gd", "lazy"])
    assert dense.estimated_bytes == 2 * 7 * 10 * 8 + 2 * 8 * (8 * (23 // 4 + 2) + 10 * (23 // 5 + 2))
    reduced = _req(width=300, steps=23, record_every=1, spectrum_every=0, dtype="float32")
    assert reduced.estimated_bytes == 2 * 20 * 10 * 8 + 1 * 8 * (8 * (23 + 2) + 0)


def test_estimated_flops_per_dynamics() -> None:
    """docs/reliability.md: lazy 4 d^3 and balanced 16 d^3 per step; no spectra recorded: one (the last)."""
    lazy = _req(width=300, steps=4, spectrum_every=0, dynamics=["lazy"])
    assert lazy.estimated_flops == 5 * 4 * 1000 + 1 * 10 * 1000
    balanced = _req(width=300, steps=4, spectrum_every=2, dynamics=["balanced"])
    assert balanced.estimated_flops == 5 * 16 * 1000 + (4 // 2 + 2) * 10 * 1000


def test_result_size_limit_and_its_boundary() -> None:
    r = _req(width=7, init="dense", steps=23)
    exact = Limits(max_result_bytes=r.estimated_bytes)
    assert parse_request(r.normalized(), exact).steps == 23  # at the limit: accepted
    with pytest.raises(InvalidRequest) as info:
        parse_request(r.normalized(), Limits(max_result_bytes=r.estimated_bytes - 1))
    (p,) = info.value.problems
    assert p.field == "steps" and "over the limit of" in p.reason and "record less often" in p.reason
    assert parse_request(r.normalized(), Limits(max_result_bytes=None)).steps == 23


def test_dense_memory_boundary() -> None:
    r = _req(width=7, init="dense")
    assert parse_request(r.normalized(), Limits(dense_memory_bytes=r.dense_weight_bytes)).width == 7
    with pytest.raises(InvalidRequest) as info:
        parse_request(r.normalized(), Limits(dense_memory_bytes=r.dense_weight_bytes - 1))
    assert [p.field for p in info.value.problems] == ["init"]


def test_run_time_limit_boundary() -> None:
    r = _req(width=300, steps=4, spectrum_every=0, dynamics=["lazy"])
    seconds = r.estimated_flops / 1e9
    assert parse_request(r.normalized(), Limits(flops_per_second=1e9, max_run_seconds=seconds)).steps == 4
    with pytest.raises(InvalidRequest) as info:
        parse_request(r.normalized(), Limits(flops_per_second=1e9, max_run_seconds=seconds * 0.999))
    (p,) = info.value.problems
    assert p.field == "steps" and "lazy at d = 10 over 4 steps" in p.reason


def test_limits_at_their_boundaries() -> None:
    assert parse_request(dict(d=50, rank=1, sigma2=0.1, width=5, steps=100), Limits(max_d=50, max_steps=100)).d == 50
    with pytest.raises(InvalidRequest, match="d = 51 exceeds the limit of 50"):
        parse_request(dict(d=51, rank=1, sigma2=0.1, width=5), Limits(max_d=50))
    with pytest.raises(InvalidRequest, match="steps = 101 exceeds the limit of 100"):
        parse_request(dict(d=5, rank=1, sigma2=0.1, width=5, steps=101), Limits(max_steps=100))
    assert parse_request(dict(d=5, rank=5, sigma2=0.1, width=5)).rank == 5  # rank = d is allowed


@pytest.mark.parametrize(
    ("args", "expected"),
    [((0.5, 0.5, 5, 5), ("lazy", False, False)),  # gamma_sigma2 + gamma_w = 1: not active
     ((0.4, 0.5, 5, 5), ("active", False, False)),
     ((-1.0, 1.0, 5, 5), ("active", False, False)),  # gamma_w = 1: theory needs gamma_w > 1
     ((-0.75, 1.5, 5, 5), ("active", False, False)),  # gamma_w + 2 gamma_sigma2 = 0: needs < 0
     ((-1.01, 2.0, 5, 5), ("active", True, False)),
     ((-1.0, 1.5, 4, 5), ("active", True, True))],  # w < k
)
def test_regime_boundaries(args: tuple[float, float, int, int], expected: tuple[str, bool, bool]) -> None:
    r = regime(*args)
    assert (r["regime"], r["theory_applies"], r["underparametrised"]) == expected


def test_power_floor_and_consistency() -> None:
    assert _power(10, 2.0) == 100.0 and _power(10, 400.0) == math.inf  # overflow is inf, not an error
    assert _floor_width(10, 2.0) == 100 and _floor_width(8, 1.0 / 3.0) == 2  # 8^(1/3) = 1.999...
    assert _floor_width(10, 1.5) == 31 and _floor_width(10, 400.0) == -1
    assert _consistent("gamma_w", 10, 2.0, 100) and not _consistent("gamma_w", 10, 2.0, 99)
    assert _consistent("gamma_sigma2", 10, -1.0, 0.1 * (1 + 1e-12))
    assert not _consistent("gamma_sigma2", 10, -1.0, 0.1 * (1 + 1e-8))
    assert not _consistent("gamma_sigma2", 10, -1.0, -0.1)
    assert _power(10, -400.0) == 0.0 and not _consistent("gamma_sigma2", 10, -400.0, 0.0)  # sigma^2 must be > 0


@pytest.mark.parametrize(("x", "number"), [(1, True), (1.5, True), (True, False), (math.inf, False),
                                           (math.nan, False), ("1", False), (None, False)])
def test_is_number(x: object, number: bool) -> None:
    """Both forms given: only finite ints and floats (not bools) are compared."""
    assert _is_number(x) is number


def test_both_forms_agreeing_are_kept_exactly() -> None:
    r = SimulationRequest(d=10, rank=1, gamma_sigma2=-1.0, sigma2=0.1, gamma_w=2.0, width=100)
    assert (r.gamma_sigma2, r.sigma2, r.gamma_w, r.width) == (-1.0, 0.1, 2.0, 100)
    with pytest.raises(ValidationError, match="give either gamma_sigma2 or sigma2, not both"):
        SimulationRequest(d=10, rank=1, gamma_sigma2=-1.0, sigma2=0.2, gamma_w=2.0)


def test_problems_text_and_fields() -> None:
    exc = InvalidRequest([FieldProblem(None, "bad as a whole"), FieldProblem("d", "too small", ("d",))])
    assert str(exc) == "request: bad as a whole; d: too small"
    assert [p.field for p in exc.problems] == [None, "d"]
    with pytest.raises(InvalidRequest) as info:
        parse_request(dict(d=4, rank=9, sigma2=0.1, width=8))
    (p,) = info.value.problems
    assert (p.field, p.loc, p.kind) == ("rank", ("rank",), "value_error")
    assert p.reason == "rank = 9 must be between 1 and d = 4"
    with pytest.raises(InvalidRequest) as info:
        parse_request(dict(d=4, rank=1, sigma2=0.1))
    (p,) = info.value.problems
    assert p.field == "gamma_w" and p.reason == "give either gamma_w or width"


def test_a_request_that_is_not_an_object_names_no_field() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_request([1, 2])
    (p,) = info.value.problems
    assert p.field is None and p.loc == () and str(info.value).startswith("request: ")

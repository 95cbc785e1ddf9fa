"""Validation of the request: every bad value is an error naming the field and the reason."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from dynamics.request import InvalidRequest, Limits, SimulationRequest, regime

GOOD = dict(d=20, rank=3, gamma_sigma2=-1.5, gamma_w=2.0)


def errors_of(limits: Limits | None = None, **kw) -> list[dict]:  # type: ignore[no-untyped-def]
    data = {**GOOD, **kw}
    data = {k: v for k, v in data.items() if v is not ...}
    with pytest.raises(ValidationError) as info:
        SimulationRequest.model_validate(data, context={"limits": limits} if limits else None)
    return [{"field": p.field, "msg": p.reason} for p in InvalidRequest.of(info.value).problems]


@pytest.mark.parametrize(
    ("kw", "field", "reason"),
    [
        (dict(d=1), "d", "greater than or equal to 2"),
        (dict(rank=0), "rank", "greater than or equal to 1"),
        (dict(rank=21), "rank", "between 1 and d"),
        (dict(width=0, gamma_w=None), "width", "greater than or equal to 1"),
        (dict(sigma2=0.0, gamma_sigma2=None), "sigma2", "greater than 0"),
        (dict(sigma2=-1.0, gamma_sigma2=None), "sigma2", "greater than 0"),
        (dict(noise_std=math.nan), "noise_std", "finite"),
        (dict(gamma_w=math.inf), "gamma_w", "finite"),
        (dict(lr=math.nan), "lr", "finite"),
        (dict(lr_constant=-1.0), "lr_constant", "greater than 0"),
        (dict(steps=-1), "steps", "greater than or equal to 0"),
        (dict(dynamics=[]), "dynamics", "at least 1"),
        (dict(dynamics=["gd", "gd"]), "dynamics", "once"),
        (dict(dynamics=["sgd"]), "dynamics", "gd"),
        (dict(init="wishart", gamma_w=1.0), "init", "width >= 2d"),
        (dict(gamma_w=None), "gamma_w", "either gamma_w or width"),
        (dict(width=401), "gamma_w", "not both"),
        (dict(gamma_w=-5.0), "gamma_w", "must be >= 1"),
        (dict(backend="tpu"), "backend", "numpy"),
        (dict(unknown=1), "unknown", "Extra inputs"),
        (dict(record_every=0), "record_every", "greater than or equal to 1"),
    ],
)
def test_bad_values_name_the_field(kw: dict, field: str, reason: str) -> None:
    errs = errors_of(**kw)
    assert any(e["field"] == field and reason in e["msg"] for e in errs), errs


def test_configurable_limits() -> None:
    lim = Limits(max_steps=100, max_d=50, dense_memory_bytes=10_000)
    assert any("limit of 100" in e["msg"] and e["field"] == "steps" for e in errors_of(lim, steps=101))
    assert any("limit of 50" in e["msg"] and e["field"] == "d" for e in errors_of(lim, d=51))
    errs = errors_of(lim, init="dense")
    assert any(e["field"] == "init" and "wishart" in e["msg"] and "exactly" in e["msg"] for e in errs)
    SimulationRequest.model_validate({**GOOD, "steps": 100}, context={"limits": lim})


def test_derived_forms_and_round_trip() -> None:
    r = SimulationRequest(**GOOD)
    assert r.width == math.floor(20**2.0) == 400
    assert math.isclose(r.sigma2, 20**-1.5)
    assert math.isclose(r.threshold, 20**0.5)
    r2 = SimulationRequest(d=20, rank=3, sigma2=0.5, width=77)
    assert math.isclose(20**r2.gamma_sigma2, 0.5) and math.isclose(20**r2.gamma_w, 77)
    # the normalised form validates back to the same request, and has one cache key
    assert SimulationRequest.model_validate(r.normalized()) == r
    assert SimulationRequest.model_validate(r.normalized()).cache_key() == r.cache_key()
    assert SimulationRequest(**GOOD, seed=1).cache_key() != r.cache_key()
    assert SimulationRequest(**GOOD, backend="numpy").cache_key() == r.cache_key()


def test_width_floor_is_robust() -> None:
    assert SimulationRequest(d=10, rank=1, gamma_sigma2=0, gamma_w=2.0).width == 100
    assert SimulationRequest(d=200, rank=5, gamma_sigma2=-1.85, gamma_w=2.25).width == math.floor(200**2.25)


def test_regime() -> None:
    assert regime(-1.85, 2.25, 150000, 5) == {"regime": "active", "theory_applies": True, "underparametrised": False}
    assert regime(-0.8, 2.0, 40000, 5)["regime"] == "lazy"
    assert regime(-0.5, 0.2, 2, 5)["underparametrised"]


@settings(max_examples=200, deadline=None)
@given(
    d=st.integers(-5, 5000),
    rank=st.integers(-3, 60),
    gs=st.floats(allow_nan=True, allow_infinity=True),
    gw=st.one_of(st.none(), st.floats(-3, 6)),
    width=st.one_of(st.none(), st.integers(-5, 10**7)),
    steps=st.integers(-10, 10**6),
    init=st.sampled_from(["auto", "dense", "wishart", "bad"]),
)
def test_validation_never_crashes(d, rank, gs, gw, width, steps, init) -> None:  # type: ignore[no-untyped-def]
    """Any input either validates to a consistent request or raises ValidationError with named fields."""
    data = dict(d=d, rank=rank, gamma_sigma2=gs, gamma_w=gw, width=width, steps=steps, init=init)
    try:
        r = SimulationRequest.model_validate(data)
    except ValidationError as exc:
        # each problem names a field given here (None counts: its absence is the error), or sigma2, the threshold
        # sigma^2 w derived from gamma_sigma2
        for p in InvalidRequest.of(exc).problems:
            assert p.reason and p.field in {*data, "sigma2"}, p
        return
    assert 2 <= r.d and 1 <= r.rank <= r.d and r.width >= 1 and r.sigma2 > 0
    assert math.isfinite(r.threshold)
    assert not (r.init == "wishart" and r.width < 2 * r.d)


@pytest.mark.parametrize(
    "kw",
    [dict(d=12, rank=2, sigma2=0.01, width=77), dict(d=200, rank=5, gamma_sigma2=-1.85, gamma_w=2.25),
     dict(d=7, rank=1, sigma2=1 / 3, gamma_w=2.5)],  # fmt: skip
)
def test_validation_is_idempotent(kw: dict) -> None:
    """Validating the normalised form gives back every value exactly (the stored request is what runs)."""
    r = SimulationRequest(**kw)
    again = SimulationRequest.model_validate(r.normalized())
    assert again.normalized() == r.normalized()
    assert again.cache_key() == r.cache_key()
    assert SimulationRequest.model_validate(again.normalized()).normalized() == r.normalized()


def test_the_run_time_estimate_and_its_limit() -> None:
    """estimated_flops is the model of docs/reliability.md, exactly; a run estimated over max_run_seconds is
    refused on steps with the estimate in the message (the issue's d = 4096, 100 steps, GD + self-consistent)."""
    req = SimulationRequest(d=10, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, steps=9, spectrum_every=3,
                            dynamics=["gd", "self_consistent"])
    n = req.inner_width
    spectra = 9 // 3 + 2
    assert req.estimated_flops == 10 * (6 * 100 * n) + spectra * 10 * 1000 + 10 * 16 * 1000 + spectra * 10 * 1000
    big = {"d": 4096, "rank": 5, "gamma_sigma2": -1.85, "gamma_w": 2.25, "steps": 100,
           "dynamics": ["gd", "self_consistent"]}
    with pytest.raises(ValidationError) as exc:
        SimulationRequest.model_validate(big)
    (problem,) = InvalidRequest.of(exc.value).problems
    assert problem.loc == ("steps",) and "would take about" in problem.reason and "over the limit of 3600 s" in problem.reason
    fast = Limits(flops_per_second=1e15)
    assert SimulationRequest.model_validate(big, context={"limits": fast}).d == 4096
    assert SimulationRequest.model_validate(big, context={"limits": Limits(max_run_seconds=None)}).d == 4096


def test_the_peak_memory_estimate_and_its_limit() -> None:
    """run_bytes is the model of docs/reliability.md (checked against measured peak memory by bench/run_memory.py),
    exactly; over max_run_bytes a request is refused on d when d alone is too much, else on steps, with the
    estimate in the message."""
    from dynamics.request import RECORDED_VALUE_BYTES, SPECTRUM_OVERHEAD_BYTES, STEP_TEMPORARIES, run_bytes
    from dynamics.result import METRIC_COLUMNS

    req = SimulationRequest(d=10, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, steps=9, spectrum_every=3,
                            dynamics=["gd", "self_consistent"])
    d, n, b = 10, req.inner_width, 8
    assert n == 2 * d  # reduced
    task = 3 * d * d * 8 + 2 * d * d * b
    init = 2 * n * d * (16 + b) + d * d * b
    gd = d * d * b + 2 * n * d * b + STEP_TEMPORARIES["gd"] * d * d * b + 2 * n * d * b
    sc = d * d * b + d * d * b + STEP_TEMPORARIES["self_consistent"] * d * d * b
    histories = (2 * 2 + 1) * 10 * 8
    records = 2 * ((9 + 2) * (len(METRIC_COLUMNS) + 1) * RECORDED_VALUE_BYTES
                   + (9 // 3 + 2) * (2 * d * 8 + SPECTRUM_OVERHEAD_BYTES))
    assert req.estimated_run_bytes == run_bytes([req]) == task + init + gd + sc + histories + records
    # a batch holds the task once and every point's arrays
    other = SimulationRequest(**{**req.normalized(), "seed": 1})
    assert run_bytes([req, other]) == 2 * req.estimated_run_bytes - task
    # float32 halves the arrays of the dtype
    assert SimulationRequest(**{**req.normalized(), "dtype": "float32"}).estimated_run_bytes < req.estimated_run_bytes

    long_run = dict(GOOD, steps=50_000, record_every=1, spectrum_every=1)
    fits = SimulationRequest(**long_run).estimated_run_bytes
    (err,) = errors_of(Limits(max_run_bytes=fits - 1, max_run_seconds=None, max_result_bytes=None), **long_run)
    assert err["field"] == "steps" and f"about {fits / 2**20:.0f} MiB" in err["msg"] and "record less" in err["msg"]
    assert SimulationRequest.model_validate(long_run, context={"limits": Limits(max_run_bytes=fits,
                                                                                max_run_seconds=None)})
    (err,) = errors_of(Limits(max_run_bytes=2**20, max_run_seconds=None), d=400, gamma_w=2.0, steps=1)
    assert err["field"] == "d" and "smaller d" in err["msg"]
    # the default admits the d = 4096 GD + self-consistent (about 5.8 GB) when its time is allowed
    big = SimulationRequest.model_validate({"d": 4096, "rank": 5, "gamma_sigma2": -1.85, "gamma_w": 2.25, "steps": 100,
                                            "dynamics": ["gd", "self_consistent"]},
                                           context={"limits": Limits(max_run_seconds=None)})
    assert 4 * 2**30 < big.estimated_run_bytes < Limits().max_run_bytes  # type: ignore[operator]

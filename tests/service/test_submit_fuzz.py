"""Hypothesis against POST /v1/runs: any JSON body, near-valid or not, gets a 2xx or a 422 naming a field,
never a 5xx; a run is stored exactly when the answer is 202, and every stored run's request validates
again under the service's limits (nothing invalid is ever stored)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core import Settings, get_sessionmaker
from dynamics import SimulationRequest
from models import Run

SETTINGS_LIMITS = {"max_d": 64, "max_steps": 200}

junk = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=1))
ints = st.one_of(st.integers(min_value=-3, max_value=80), st.integers(), junk)
floats = st.one_of(st.floats(min_value=-4, max_value=4), st.floats(allow_nan=True, allow_infinity=True),
                   st.integers(-3, 3), junk)
names = st.sampled_from(["gd", "self_consistent", "lazy", "balanced", "GD", "newton", ""])

FIELDS: dict[str, Any] = {
    "d": ints, "rank": ints, "steps": st.one_of(st.integers(0, 250), ints),
    "gamma_sigma2": floats, "gamma_w": st.one_of(st.floats(0.5, 2.5), floats),
    "sigma2": floats, "width": ints, "lr": floats, "lr_constant": floats, "noise_std": floats,
    "seed": ints, "task_seed": ints, "record_every": ints, "spectrum_every": ints,
    "dynamics": st.one_of(st.lists(names, max_size=5), junk),
    "init": st.sampled_from(["auto", "dense", "wishart", "other", 3]),
    "dtype": st.sampled_from(["float64", "float32", "float16"]),
    "backend": st.sampled_from(["auto", "numpy", "cupy", "torch"]),
    "stopping": st.sampled_from(["paper", "none", "never"]),
    "gd_update": st.sampled_from(["simultaneous", "sequential", "x"]),
    "unknown_field": st.integers(),
}


@st.composite
def bodies(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:  # sometimes not an object at all
        return draw(st.one_of(junk, st.lists(st.integers(), max_size=3)))
    keys = draw(st.sets(st.sampled_from(sorted(FIELDS)), max_size=len(FIELDS)))
    # usually a near-valid request: the required fields present, a few others
    base: dict[str, Any] = {}
    if draw(st.booleans()):
        base = {"d": draw(st.integers(2, 40)), "rank": draw(st.integers(1, 5)),
                "gamma_sigma2": draw(st.floats(-2.5, 0)), "gamma_w": draw(st.floats(1.0, 2.2)),
                "steps": draw(st.integers(0, 40))}
    return {**base, **{k: draw(FIELDS[k]) for k in keys}}


def _count(factory: Any) -> int:
    with factory() as s:
        return int(s.scalar(select(func.count()).select_from(Run)) or 0)


def test_submit_never_500_never_stores_invalid(embedded_settings: Settings) -> None:
    from tests.service.conftest import make_client

    service_settings = embedded_settings.model_copy(update=SETTINGS_LIMITS)
    factory = get_sessionmaker(service_settings.db_url)
    with make_client(service_settings) as client:

        @settings(max_examples=300, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(body=bodies(), force=st.booleans())
        def submit(body: Any, force: bool) -> None:
            before = _count(factory)
            # NaN and Infinity sent as Python's json writes them (not strict JSON): they must be refused too
            r = client.post("/v1/runs", content=json.dumps(body), headers={"content-type": "application/json"},
                            params={"force": "true"} if force else None)
            after = _count(factory)
            assert r.status_code in (200, 202, 422), (r.status_code, r.text, body)
            if r.status_code == 422:
                detail = r.json()["detail"]
                assert detail and all("msg" in e and "loc" in e for e in detail), detail
            assert after == before + (1 if r.status_code == 202 else 0), (r.status_code, body)
            seen.add(r.status_code)

        seen: set[int] = set()
        submit()
        assert {202, 422} <= seen  # both sides of validation were exercised

    with factory() as s:  # everything stored validates again, under the same limits
        for run in s.scalars(select(Run)):
            again = SimulationRequest.model_validate(run.request, context={"limits": service_settings.limits})
            assert again.normalized() == run.request

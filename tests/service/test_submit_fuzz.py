"""Hypothesis against POST /v1/runs: any JSON body, near-valid or not, gets a 2xx or a 422 naming a field,
never a 5xx; a run is stored exactly when the answer is 202, and every stored run's request validates
again under the service's limits (nothing invalid is ever stored)."""

from __future__ import annotations

import base64
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
ints = st.one_of(st.integers(min_value=-3, max_value=80), st.integers(), junk,
                st.integers(2**31 - 2, 2**31 + 2), st.integers(2**63 - 2, 2**63 + 2))  # the columns' edges
odd_text = st.text(alphabet=st.characters(categories=["L", "Cs", "Cc"]), max_size=4)
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
    # labels: text with lone surrogates (JSON "\ud800") and NUL, never a 500 on either database
    "name": st.one_of(odd_text, junk),
    "tags": st.one_of(st.dictionaries(odd_text, odd_text, max_size=2), junk),
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


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=2), inner, max_size=3)),
    max_leaves=8,
)
cursors = st.one_of(
    st.builds(lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).decode(), json_values),
    st.builds(lambda k, i: base64.urlsafe_b64encode(json.dumps({"s": "d", "y": None, "k": k, "id": i}).encode())
              .decode(), json_values, json_values),
    st.text(max_size=8),
)
query_params = st.fixed_dictionaries({}, optional={
    "d": st.integers(-(2**64), 2**64), "width": st.integers(-(2**64), 2**64), "offset": st.integers(-5, 2**64),
    "created_after": st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2026-01-01"]),
    "cursor": cursors, "sort": st.sampled_from(["d", "-name", "created_at", "width"]),
})


def test_odd_queries_and_sweeps_never_500(embedded_settings: Settings) -> None:
    """GET /v1/runs with integers beyond the columns, times beyond UTC and crafted cursors, and POST
    /v1/sweeps with junk under an axis and odd keys: a 200 or a 422, never a 5xx (issue 13)."""
    from tests.service.conftest import make_client

    with make_client(embedded_settings.model_copy(update=SETTINGS_LIMITS)) as client:
        client.post("/v1/runs", json={"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 5})

        @settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(params=query_params, base_seed=json_values, key=odd_text)
        def probe(params: dict[str, Any], base_seed: Any, key: str) -> None:
            r = client.get("/v1/runs", params=params)
            assert r.status_code in (200, 422), (r.status_code, r.text, params)
            body = {"base": {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 5, "seed": base_seed},
                    "axes": {"seed": {"values": [1, 2]}, **({key: {"values": [1]}} if key else {})}}
            r = client.post("/v1/sweeps", content=json.dumps(body), headers={"content-type": "application/json"})
            assert r.status_code in (202, 422), (r.status_code, r.text, body)
            if r.status_code == 202:
                assert client.get(f"/v1/sweeps/{r.json()['id']}").status_code == 200

        probe()
        deep = "[" * 999 + "]" * 999
        assert client.post("/v1/runs", content=deep, headers={"content-type": "application/json"}).status_code == 422


#: a JSON value nested ``depth`` levels (arrays or objects), as text: the decoder gives up near 1000 levels
nested_texts = st.builds(
    lambda depth, kind, leaf: ("[" * depth + leaf + "]" * depth) if kind else ('{"a":' * depth + leaf + "}" * depth),
    st.integers(1, 3000), st.booleans(), st.sampled_from(["", "1", '"x"', "null", "[]", "{}"]),
)
#: where the nested value goes: the whole body, or one field of a near-valid run or sweep
NESTED_SLOTS = [
    ("/v1/runs", "%s"), ("/v1/sweeps", "%s"),
    ("/v1/runs", '{"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 5, "name": %s}'),
    ("/v1/runs", '{"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 5, "tags": {"k": %s}}'),
    ("/v1/runs", '{"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": %s}'),
    ("/v1/sweeps", '{"base": {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 5}, '
                   '"axes": {"seed": {"values": %s}}}'),
    ("/v1/sweeps", '{"base": {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 5, "seed": %s}, '
                   '"axes": {"rank": {"values": [1]}}}'),
    ("/v1/sweeps", '{"base": {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 5}, '
                   '"axes": {"seed": {"values": [1]}}, "tags": %s}'),
]


def test_nested_json_anywhere_in_a_body_is_never_a_500(embedded_settings: Settings) -> None:
    """Arrays and objects nested 1 to 3000 levels, as the whole body or inside a field of a run or a sweep:
    a 202 or a 422 (never FastAPI's 400, never a 5xx), and a 422 of an undecodable body names the body."""
    from tests.service.conftest import make_client

    with make_client(embedded_settings.model_copy(update=SETTINGS_LIMITS)) as client:

        @settings(max_examples=120, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(slot=st.sampled_from(NESTED_SLOTS), nested=nested_texts)
        def probe(slot: tuple[str, str], nested: str) -> None:
            path, template = slot
            r = client.post(path, content=template % nested, headers={"content-type": "application/json"})
            assert r.status_code in (202, 422), (r.status_code, r.text[:300], path, template)
            if r.status_code == 422:
                for entry in r.json()["detail"]:
                    assert entry["loc"][0] == "body" and entry["msg"], entry

        probe()

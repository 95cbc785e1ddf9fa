"""Valid but extreme input, and odd input, on SQLite and PostgreSQL: never a 500. A width beyond 2^31 is
stored (runs.width is 64-bit); a query parameter beyond its column's range, deeply nested JSON, a lone
surrogate in a label or a key, junk in a sweep's base under an axis, crafted cursors and a time beyond the
last UTC time are 422s naming the field (issue 13, items 2 and 6)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core import Settings
from tests.service.conftest import make_client

#: valid: w = floor(1000^3.2) = 3 981 071 705 > 2^31 runs exactly through the reduction
WIDE = {"d": 1000, "rank": 5, "gamma_sigma2": -2.5, "gamma_w": 3.2, "steps": 1, "dynamics": ["gd"]}
RUN = {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 5}
SWEEP = {"base": RUN, "axes": {"seed": {"values": [1, 2]}}}


@pytest.fixture
def api(db_url: str, embedded_settings: Settings) -> Iterator[TestClient]:
    with make_client(embedded_settings.model_copy(update={"database_url": db_url})) as c:
        yield c


def _field_422(r: Any, field: str) -> dict[str, Any]:
    assert r.status_code == 422, (r.status_code, r.text)
    detail = r.json()["detail"]
    hits = [e for e in detail if e.get("field") == field or field in e.get("loc", [])]
    assert hits, detail
    return hits[0]


def test_a_width_beyond_32_bits_is_stored_and_found(api: TestClient) -> None:
    r = api.post("/v1/runs", json=WIDE)
    assert r.status_code == 202, r.text
    run = api.get(f"/v1/runs/{r.json()['id']}").json()
    assert run["request"]["width"] == 3_981_071_705
    page = api.get("/v1/runs", params={"width": 3_981_071_705}).json()
    assert [item["id"] for item in page["items"]] == [r.json()["id"]]
    assert api.get("/v1/runs", params={"width_min": 3_000_000_000}).json()["total"] == 1
    _field_422(api.post("/v1/runs", json={**RUN, "gamma_w": None, "width": 2**63}), "width")


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/runs", {"d": 2**31}, "d"),
        ("/v1/runs", {"rank_max": -(2**31) - 1}, "rank_max"),
        ("/v1/runs", {"width": 2**63}, "width"),
        ("/v1/runs", {"offset": 2**63}, "offset"),
        ("/v1/runs", {"steps_run_min": 2**31, "dynamics": "gd"}, "steps_run_min"),
        ("/v1/sweeps", {"offset": 2**63}, "offset"),
        ("/v1/runs", {"created_after": "9999-12-31T23:59:59-14:00"}, "created_after"),
        ("/v1/runs", {"created_before": "9999-12-31T23:59:59-14:00"}, "created_before"),
    ],
)
def test_query_parameters_beyond_their_columns_are_422(
    api: TestClient, path: str, params: dict[str, Any], field: str
) -> None:
    _field_422(api.get(path, params=params), field)


def test_the_largest_values_in_range_are_answered(api: TestClient) -> None:
    for params in ({"d": 2**31 - 1}, {"width": 2**63 - 1}, {"offset": 2**63 - 1},
                   {"created_after": "9999-12-31T23:59:59+00:00"}):
        r = api.get("/v1/runs", params=params)
        assert r.status_code == 200 and r.json()["items"] == [], (params, r.text)


NESTED = "body is nested too deeply to be decoded"


@pytest.mark.parametrize("depth", [999, 100_000])
@pytest.mark.parametrize("path", ["/v1/runs", "/v1/sweeps"])
def test_deeply_nested_json_is_422_naming_the_body(api: TestClient, path: str, depth: int) -> None:
    """Arrays or objects nested deeper than the decoder goes: the same 422 on every body endpoint, whether the
    route (runs) or FastAPI (sweeps) decodes the body, never FastAPI's 400."""
    for deep in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        r = api.post(path, content=deep, headers={"content-type": "application/json"})
        assert r.status_code == 422, (path, r.status_code, r.text[:300])
        (entry,) = r.json()["detail"]
        assert entry["loc"] == ["body"] and entry["type"] == "json_invalid" and NESTED in entry["msg"], entry
    assert api.get("/v1/runs").json()["total"] == 0 and api.get("/v1/sweeps").json()["total"] == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/runs", '{"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "name": %s}', "name"),
        ("/v1/runs", '{"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "tags": {"k": %s}}', "tags"),
        ("/v1/sweeps", '{"base": {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0}, '
                       '"axes": {"seed": {"values": %s}}}', "axes"),
        ("/v1/sweeps", '{"base": {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "seed": %s}, '
                       '"axes": {"rank": {"values": [1]}}}', "base"),
    ],
)
def test_deep_nesting_inside_a_field_is_422_naming_the_field(api: TestClient, path: str, body: str, field: str) -> None:
    """Nested as deep as the decoder allows (900 levels) inside one field: a 422 on that field."""
    r = api.post(path, content=body % ("[" * 900 + "]" * 900), headers={"content-type": "application/json"})
    _field_422(r, field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/runs", {**RUN, "name": "a\ud800"}, "name"),
        ("/v1/runs", {**RUN, "tags": {"k": "\ud800"}}, "tags"),
        ("/v1/runs", {**RUN, "tags": {"\udfff": "v"}}, "tags"),
        ("/v1/sweeps", {**SWEEP, "name": "\ud800"}, "name"),
        ("/v1/sweeps", {**SWEEP, "tags": {"k\ud800": "v"}}, "tags"),
        ("/v1/sweeps", {**SWEEP, "axes": {"\ud800": {"values": [1]}}}, "axes"),
        ("/v1/sweeps", {**SWEEP, "base": {**RUN, "\ud800": 1}}, "base"),
        ("/v1/runs", {**RUN, "\ud800": 1}, "body"),
    ],
)
def test_a_lone_surrogate_is_422(api: TestClient, path: str, body: dict[str, Any], field: str) -> None:
    r = api.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
    _field_422(r, field)
    assert api.get("/v1/runs").json()["total"] == 0 and api.get("/v1/sweeps").json()["total"] == 0


@pytest.mark.parametrize("junk", [float("nan"), float("inf"), {"x": [1, {"y": None}]}, "text"])
def test_junk_under_an_axis_is_never_stored(api: TestClient, junk: Any) -> None:
    """A base key that an axis gives is not used: it is not stored either, so reading the sweep never meets
    it (it was stored as sent, and NaN made GET /v1/sweeps/{id} a 500 for ever)."""
    body = {"base": {**RUN, "seed": junk}, "axes": {"seed": {"values": [1, 2]}}}
    r = api.post("/v1/sweeps", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 202, r.text
    sweep = api.get(f"/v1/sweeps/{r.json()['id']}")
    assert sweep.status_code == 200 and sweep.json()["base"] == RUN
    assert api.get("/v1/sweeps").status_code == 200


def _cursor(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "data"),
    [
        ("d", {"s": "d", "y": None, "k": "abc", "id": str(uuid.uuid4())}),  # a string key for a number column
        ("name", {"s": "name", "y": None, "k": 5, "id": str(uuid.uuid4())}),  # a number for a text column
        ("d", {"s": "d", "y": None, "k": True, "id": str(uuid.uuid4())}),
        ("d", {"s": "d", "y": None, "k": 10**40, "id": str(uuid.uuid4())}),
        ("d", {"s": "d", "y": None, "k": 3, "id": 12345}),  # an integer id
        ("d", {"s": "d", "y": None, "k": 3, "id": {"id": str(uuid.uuid4())}}),
        ("name", {"s": "name", "y": None, "k": "\ud800", "id": str(uuid.uuid4())}),
        ("created_at", {"s": "created_at", "y": None, "k": "9999-12-31T23:59:59-14:00", "id": str(uuid.uuid4())}),
        ("d", [[[["nested"]]]]),
    ],
)
def test_crafted_cursors_are_422(api: TestClient, sort: str, data: Any) -> None:
    api.post("/v1/runs", json=RUN)
    _field_422(api.get("/v1/runs", params={"sort": sort, "cursor": _cursor(data)}), "cursor")


def test_a_cursor_nested_deeper_than_the_stack_is_422(api: TestClient) -> None:
    deep = base64.urlsafe_b64encode(("[" * 5000 + "]" * 5000).encode()).decode()
    _field_422(api.get("/v1/runs", params={"cursor": deep}), "cursor")


def test_a_request_estimated_over_the_time_limit_is_422_with_the_estimate(api: TestClient) -> None:
    """d = 4096, 100 steps, GD and self-consistent: accepted before, it blocked a worker for hours."""
    big = {"d": 4096, "rank": 5, "gamma_sigma2": -1.85, "gamma_w": 2.25, "steps": 100,
           "dynamics": ["gd", "self_consistent"]}
    detail = _field_422(api.post("/v1/runs", json=big), "steps")
    assert "would take about" in detail["msg"] and "s (" in detail["msg"], detail
    assert api.get("/v1/runs").json()["total"] == 0

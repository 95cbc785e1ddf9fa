"""GET /v1/runs: filters (status, sweep, name, tags, parameter ranges, summary metrics of one dynamics), sorting,
cursor pagination in a stable order, and 422s naming the parameter; POST /v1/runs with a name and tags.
On SQLite and PostgreSQL (NULL ordering and UUID comparison differ between them)."""

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
from workers.tasks import execute_run

BASE = {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 8, "spectrum_every": 0}


@pytest.fixture
def api(db_url: str, embedded_settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    settings = embedded_settings.model_copy(update={"database_url": db_url})
    with make_client(settings) as c:
        yield c, settings


def _ids(page: dict[str, Any]) -> list[str]:
    return [r["id"] for r in page["items"]]


def _all_pages(c: TestClient, params: dict[str, Any]) -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    cursor = None
    while True:
        r = c.get("/v1/runs", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        ids += _ids(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, pages
        assert pages < 50


def test_labels_are_stored_and_validated(api: tuple[TestClient, Settings]) -> None:
    c, _ = api
    body = {**BASE, "name": "first", "tags": {"project": "phase", "by": "ana"}}
    r = c.post("/v1/runs", json=body)
    assert r.status_code == 202, r.text
    run = c.get(f"/v1/runs/{r.json()['id']}").json()
    assert run["name"] == "first" and run["tags"] == {"by": "ana", "project": "phase"}
    assert "name" not in run["request"] and "tags" not in run["request"]  # not part of the request
    listed = c.get("/v1/runs").json()["items"][0]
    assert listed["name"] == "first" and listed["tags"] == {"by": "ana", "project": "phase"}
    for bad, field in (({"tags": {"a=b": "x"}}, "tags"), ({"tags": {"k": 1}}, "tags"), ({"tags": ["x"]}, "tags"),
                       ({"name": "x" * 201}, "name"), ({"name": ""}, "name")):
        r = c.post("/v1/runs", json={**BASE, "seed": 5, **bad})
        assert r.status_code == 422, (bad, r.text)
        assert any(e["field"] == field or e["loc"][:2] == ["body", field] for e in r.json()["detail"]), r.json()
    assert c.get("/v1/runs").json()["total"] == 1


def test_filters(api: tuple[TestClient, Settings]) -> None:
    c, settings = api
    specs = [
        ({"d": 6, "gamma_w": 2.0}, "a", {"project": "p1", "kind": "x"}, True),
        ({"d": 6, "gamma_w": 2.3}, "b", {"project": "p1"}, True),
        ({"d": 8, "gamma_w": 2.6}, "a", {"project": "p2"}, True),
        ({"d": 8, "gamma_w": 1.5, "dynamics": ["self_consistent"]}, None, {}, True),
        ({"d": 10, "gamma_w": 2.0}, None, {}, False),  # stays queued: no summaries
    ]
    ids = []
    for fields, name, tags, run in specs:
        body = {**BASE, **fields, **({"name": name} if name else {}), "tags": tags}
        rid = c.post("/v1/runs", json=body).json()["id"]
        ids.append(rid)
        if run:
            assert execute_run(uuid.UUID(rid), settings) in ("succeeded", "diverged")

    def find(**params: Any) -> set[str]:
        r = c.get("/v1/runs", params={"limit": 100, **params})
        assert r.status_code == 200, r.text
        assert r.json()["total"] == len(r.json()["items"])
        return set(_ids(r.json()))

    assert find() == set(ids)
    assert find(status="queued") == {ids[4]}
    assert find(status=["queued", "succeeded"]) == set(ids)
    assert find(name="a") == {ids[0], ids[2]}
    assert find(tag="project=p1") == {ids[0], ids[1]}
    assert find(tag=["project=p1", "kind"]) == {ids[0]}
    assert find(tag="kind=y") == set()
    assert find(d=6) == {ids[0], ids[1]}
    assert find(d_min=7, d_max=9) == {ids[2], ids[3]}
    assert find(gamma_w_min=2.0, gamma_w_max=2.3) == {ids[0], ids[1], ids[4]}
    assert find(gamma_w=2.3, d=6) == {ids[1]}
    assert find(rank=2, width_min=1000) == set()
    assert find(dynamics="self_consistent") == {ids[3]}
    assert find(dynamics="gd") == {ids[0], ids[1], ids[2], ids[4]}
    assert find(regime="active", d=6) == {ids[0], ids[1]}
    assert find(sweep_id=str(uuid.uuid4())) == set()

    runs = {rid: c.get(f"/v1/runs/{rid}").json() for rid in ids}
    errors = {rid: runs[rid]["summaries"]["gd"]["min_test_error"] for rid in ids[:3]}
    cut = sorted(errors.values())[1]
    assert find(dynamics="gd", min_test_error_max=cut) == {r for r, e in errors.items() if e <= cut}
    assert find(dynamics="gd", min_test_error_min=cut) == {r for r, e in errors.items() if e >= cut}
    assert find(dynamics="gd", steps_run_min=8) == set(ids[:3])

    # sorting by a summary metric: runs without that summary (queued) come last either way
    for sort in ("min_test_error", "-min_test_error"):
        r = c.get("/v1/runs", params={"dynamics": "gd", "sort": sort}).json()
        expected = sorted(errors, key=errors.__getitem__, reverse=sort.startswith("-")) + [ids[4]]
        assert _ids(r) == expected, sort
    by_d = _ids(c.get("/v1/runs", params={"sort": "d"}).json())
    assert [runs[i]["d"] for i in by_d] == sorted(runs[i]["d"] for i in ids)
    oldest = _ids(c.get("/v1/runs", params={"sort": "created_at"}).json())
    assert oldest == ids and _ids(c.get("/v1/runs").json()) == ids[::-1]  # default: newest first


def test_cursor_pages_are_stable_and_complete(api: tuple[TestClient, Settings]) -> None:
    c, _ = api
    ids = [c.post("/v1/runs", json={**BASE, "seed": s, "gamma_w": 2.0 + (s % 2) * 0.1}).json()["id"]
           for s in range(7)]
    for sort in ("-created_at", "created_at", "gamma_w", "-gamma_w", "name", "-d"):  # ties on gamma_w, name, d
        everything = _ids(c.get("/v1/runs", params={"sort": sort, "limit": 100}).json())
        paged, pages = _all_pages(c, {"sort": sort, "limit": 3})
        assert paged == everything and sorted(paged) == sorted(ids) and pages == 3, sort
    page = c.get("/v1/runs", params={"limit": 3}).json()
    assert page["total"] == 7 and len(page["items"]) == 3 and page["next_cursor"]
    # a cursor belongs to its sort
    r = c.get("/v1/runs", params={"sort": "d", "cursor": page["next_cursor"]})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "cursor"
    # filtered paging: only the matching rows, in pages
    paged, pages = _all_pages(c, {"gamma_w": 2.1, "limit": 2})
    assert len(paged) == 3 and pages == 2
    # a page size that divides the total: the last full page has no next cursor
    assert _all_pages(c, {"limit": 7})[1] == 1


def test_cursor_pages_on_a_summary_metric_cross_into_the_runs_without_one(api: tuple[TestClient, Settings]) -> None:
    """Sorted on GD's min test error (valued runs read first, then those without a summary: two queries), pages
    of 2 give the whole list once, in order, with ties (the same request run three times) broken by id."""
    c, settings = api
    valued, queued = [], []
    for seed, force in ((0, False), (1, False), (2, False), (0, True), (0, True), (3, False)):
        rid = c.post("/v1/runs", params={"force": force}, json={**BASE, "seed": seed}).json()["id"]
        assert execute_run(uuid.UUID(rid), settings) in ("succeeded", "diverged")
        valued.append(rid)
    for seed in (10, 11, 12):
        queued.append(c.post("/v1/runs", json={**BASE, "seed": seed}).json()["id"])
    error = {rid: c.get(f"/v1/runs/{rid}").json()["summaries"]["gd"]["min_test_error"] for rid in valued}
    assert len(set(error.values())) == 4  # seed 0 three times: a tie of three
    for sort in ("min_test_error", "-min_test_error"):
        down = sort.startswith("-")
        expected = sorted(valued, key=lambda r: (error[r], uuid.UUID(r)), reverse=down)
        expected += sorted(queued, key=uuid.UUID, reverse=down)  # without a value: last either way, by id
        whole = _ids(c.get("/v1/runs", params={"dynamics": "gd", "sort": sort, "limit": 100}).json())
        assert whole == expected, sort
        for limit in (2, 3, 6):
            assert _all_pages(c, {"dynamics": "gd", "sort": sort, "limit": limit})[0] == expected, (sort, limit)
        offset = c.get("/v1/runs", params={"dynamics": "gd", "sort": sort, "limit": 4, "offset": 4}).json()
        assert _ids(offset) == expected[4:8]


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"colour": "red"}, "colour", "unknown query parameter"),
        ({"gamma_w_minimum": 1}, "gamma_w_minimum", "unknown"),
        ({"d_min": "abc"}, "d_min", "integer"),
        ({"gamma_w_max": "high"}, "gamma_w_max", "number"),
        ({"status": "done"}, "status", "queued"),
        ({"sort": "colour"}, "sort", "created_at"),
        ({"dynamics": "sgd"}, "dynamics", "gd"),
        ({"min_test_error_max": 0.1}, "min_test_error_max", "dynamics="),
        ({"sort": "-min_test_error"}, "sort", "dynamics="),
        ({"d_min": 9, "d_max": 3}, "d_min", "greater than"),
        ({"tag": "=x"}, "tag", "key=value"),
        ({"cursor": "not-a-cursor"}, "cursor", "cursor"),
        ({"cursor": "eyJ4IjoxfQ"}, "cursor", "cursor"),
        ({"created_after": "yesterday"}, "created_after", "datetime"),
        ({"limit": 0}, "limit", "greater"),
    ],
)
def test_bad_filters_are_422_naming_them(
    api: tuple[TestClient, Settings], params: dict[str, Any], field: str, words: str
) -> None:
    c, _ = api
    r = c.get("/v1/runs", params=params)
    assert r.status_code == 422, r.text
    assert any(e["field"] == field and words in e["msg"] for e in r.json()["detail"]), r.json()


def test_cursor_and_offset_together_is_422(api: tuple[TestClient, Settings]) -> None:
    c, _ = api
    for s in range(3):
        c.post("/v1/runs", json={**BASE, "seed": s})
    cursor = c.get("/v1/runs", params={"limit": 1}).json()["next_cursor"]
    r = c.get("/v1/runs", params={"limit": 1, "cursor": cursor, "offset": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "offset"
    assert len(c.get("/v1/runs", params={"limit": 1, "offset": 2}).json()["items"]) == 1


def test_the_nul_character_is_a_422_not_a_database_error(api: tuple[TestClient, Settings]) -> None:
    """PostgreSQL cannot hold NUL in a string: labels and filters with one are refused up front, on both
    databases alike (it was a 500 on PostgreSQL)."""
    c, _ = api
    for params, field in (({"name": "a\x00b"}, "name"), ({"tag": "k=\x00"}, "tag"), ({"tag": "\x00"}, "tag")):
        for path in ("/v1/runs", "/v1/sweeps"):
            r = c.get(path, params=params)
            assert r.status_code == 422, (path, r.text)
            assert r.json()["detail"][0]["field"] == field and "NUL" in r.json()["detail"][0]["msg"]
    forged = base64.urlsafe_b64encode(json.dumps({"s": "name", "y": None, "k": "\x00", "id": str(uuid.uuid4())})
                                      .encode()).decode()
    r = c.get("/v1/runs", params={"sort": "name", "cursor": forged})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "cursor"

    run = {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 5}
    sweep = {"base": run, "axes": {"seed": {"values": [1, 2]}}}
    for path, body in (("/v1/runs", run), ("/v1/sweeps", sweep)):
        for labels, field in (({"name": "x\x00"}, "name"), ({"tags": {"k": "v\x00"}}, "tags"),
                              ({"tags": {"k\x00": "v"}}, "tags"), ({"name": ""}, "name")):
            r = c.post(path, json={**body, **labels})
            assert r.status_code == 422, (path, labels, r.text)
            assert r.json()["detail"][0]["loc"][:2] == ["body", field]
    assert c.get("/v1/runs").json()["total"] == 0 and c.get("/v1/sweeps").json()["total"] == 0

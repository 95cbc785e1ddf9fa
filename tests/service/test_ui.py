"""The dashboard's pages and assets, in process: every page and asset is served from the package (nothing
from another host), the pages load without a key while the data needs one, the forms carry the request
schemas, the runs list carries the summaries its table shows."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from dynamics import SimulationRequest, simulate
from core import Settings
from service.ui.catalogue import catalogue
from tests.service.conftest import make_client
from workers.tasks import execute_run

PAGES = ["/ui/runs", "/ui/runs/00000000-0000-0000-0000-000000000000", "/ui/sweeps",
         "/ui/sweeps/00000000-0000-0000-0000-000000000000", "/ui/compare?runs=a,b", "/ui/new", "/ui/sweeps/new"]
KEY = "ui-key-0123456789"
#: src= and href= that leave the page's own origin (a scheme, or a protocol-relative //host)
_EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?:[a-z]+:|//)""", re.IGNORECASE)


def page_data(html: str) -> dict:
    found = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', html, re.DOTALL)
    assert found, "no page data"
    return json.loads(found.group(1))


@pytest.mark.parametrize("path", ["/", "/ui"])
def test_root_redirects_to_the_runs(client: TestClient, path: str) -> None:
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui/runs"


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_html_with_local_assets_only(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert not _EXTERNAL.search(r.text), _EXTERNAL.search(r.text)
    for asset in re.findall(r"""(?:src|href)="(/ui/[^"]+)\"""", r.text):
        assert client.get(asset).status_code == 200, asset
    assert page_data(r.text)["catalogue"] == catalogue()


def test_plotly_is_served_from_the_installed_package(client: TestClient) -> None:
    r = client.get("/ui/vendor/plotly.min.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert len(r.content) > 1_000_000 and b"plotly" in r.content[:2000].lower()


@pytest.mark.parametrize(("path", "needs"), [
    ("/docs", ["/ui/vendor/docs/swagger-ui-bundle.js", "/ui/vendor/docs/swagger-ui.css"]),
    ("/redoc", ["/ui/vendor/redoc.standalone.js"]),
])
def test_api_documentation_from_local_assets(client: TestClient, path: str, needs: list[str]) -> None:
    r = client.get(path)
    assert r.status_code == 200 and "/openapi.json" in r.text
    assert "cdn" not in r.text.lower() and "fonts.googleapis" not in r.text
    for asset in needs:
        assert asset in r.text
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 50_000, asset
        assert b"cdn.redoc.ly" not in served.content, asset


def test_forms_carry_the_request_schemas(client: TestClient) -> None:
    run = page_data(client.get("/ui/new").text)
    assert run["kind"] == "run"
    props = run["schemas"]["run"]["properties"]
    assert {"d", "rank", "gamma_sigma2", "gamma_w", "dynamics", "name", "tags"} <= set(props)
    assert props["d"]["description"].startswith("input = output dimension")
    assert props["steps"]["default"] == 100
    sweep = page_data(client.get("/ui/sweeps/new").text)
    assert sweep["kind"] == "sweep"
    ref = sweep["schemas"]["sweep"]["$ref"].split("/")[-1]
    assert {"base", "axes", "name", "tags"} <= set(sweep["schemas"]["components"][ref]["properties"])


def test_catalogue_names_every_summary_metric_and_the_figure2_panels() -> None:
    c = catalogue()
    names = [m["name"] for m in c["summary_metrics"]]
    assert names[:2] == ["min_test_error", "min_test_error_step"] and "stop_reason" not in names
    assert set(c["figure2"]) <= set(names) | {"log_max_distance"}
    assert {d["name"]: d["dash"] for d in c["dynamics"]}["self_consistent"] == "dash"


@pytest.fixture
def keyed_reads(embedded_settings: Settings) -> Iterator[TestClient]:
    with make_client(embedded_settings.model_copy(update={"api_keys": [KEY], "auth_reads": True})) as c:
        yield c


def test_pages_open_data_needs_the_key(keyed_reads: TestClient) -> None:
    for path in [*PAGES, "/ui/static/lindyn.js", "/ui/vendor/plotly.min.js", "/docs", "/redoc", "/"]:
        assert keyed_reads.get(path, follow_redirects=False).status_code in (200, 307), path
    assert keyed_reads.get("/v1/runs").status_code == 401
    assert keyed_reads.get("/v1/runs", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    # only reads of the pages are open: a write under /ui/ is guarded like any other
    assert keyed_reads.post("/ui/runs").status_code == 401


def test_run_list_carries_the_summaries(client: TestClient, embedded_settings: Settings) -> None:
    """The runs table shows min test error, its step and the stable rank there: GET /v1/runs has them."""
    body = {"d": 8, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 5, "dynamics": ["gd", "self_consistent"]}
    rid = client.post("/v1/runs", json=body).json()["id"]
    queued = client.post("/v1/runs", json={**body, "seed": 1}).json()["id"]
    assert execute_run(uuid.UUID(rid), embedded_settings) == "succeeded"
    expected = simulate(SimulationRequest.model_validate(body))
    items = {item["id"]: item for item in client.get("/v1/runs").json()["items"]}
    assert items[rid]["summaries"] == {k: v.as_dict() for k, v in expected.summaries.items()}
    assert items[queued]["summaries"] == {}  # queued: none yet
    assert client.get(f"/v1/runs/{rid}").json()["summaries"] == items[rid]["summaries"]


def test_sweep_page_has_the_replicate_controls_and_the_views_it_reads(client: TestClient) -> None:
    """The sweep page carries the slice picker and the sd toggle, and the two views its script asks the API for
    (table?aggregate= over the replicates, table?at= for a slice) answer: the sweep names its replicates."""
    html = client.get("/ui/sweeps/00000000-0000-0000-0000-000000000000").text
    assert 'id="slices"' in html and 'id="sd"' in html and 'id="view-note"' in html
    script = client.get("/ui/static/sweep.js").text
    assert 'params.append("aggregate"' in script and 'params.append("at"' in script
    sid = client.post("/v1/sweeps", json={"base": {"rank": 2, "steps": 5, "gamma_sigma2": -1.5},
                                          "axes": {"gamma_w": {"values": [1.5, 2.0]}, "d": {"values": [8, 10]},
                                                   "seed": {"values": [0, 1]}}}).json()["id"]
    assert client.get(f"/v1/sweeps/{sid}").json()["replicates"] == ["seed"]
    view = client.get(f"/v1/sweeps/{sid}/table", params=[("aggregate", "seed"), ("at", "d:10")])
    assert view.status_code == 200
    assert view.json()["runs"] == [2, 2] and view.json()["gd.min_test_error.n"] == [0, 0]  # nothing ran yet

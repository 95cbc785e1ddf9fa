"""The OpenAPI document is complete: every route, every filter of GET /v1/runs and GET /v1/sweeps
(documented), the response models, and examples for the request bodies."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from core import Settings
from models.queries import RUN_RANGES, SORTS, SUMMARY_RANGES
from service.main import create_app
from service.schemas.run_filters import FILTER_NAMES


def _doc(settings: Settings) -> tuple[dict[str, Any], Any]:
    app = create_app(settings)
    with TestClient(app) as c:
        r = c.get("/openapi.json")
    assert r.status_code == 200
    return r.json(), app


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_every_route_is_documented(embedded_settings: Settings) -> None:
    doc, app = _doc(embedded_settings)
    routes = {(r.path, m.lower()) for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema
              for m in r.methods}  # fmt: skip
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert routes <= documented
    expected = {
        ("/v1/runs", "get"), ("/v1/runs", "post"), ("/v1/runs/{run_id}", "get"),
        ("/v1/runs/{run_id}/trajectory", "get"), ("/v1/runs/{run_id}/figure", "get"),
        ("/v1/runs/{run_id}/cancel", "post"), ("/v1/sweeps", "post"), ("/v1/sweeps", "get"),
        ("/v1/sweeps/{sweep_id}", "get"), ("/v1/sweeps/{sweep_id}/table", "get"),
        ("/v1/sweeps/{sweep_id}/cancel", "post"), ("/health", "get"), ("/v1/version", "get"),
    }  # fmt: skip
    assert expected <= documented, expected - documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("summary") or op.get("description"), (path, method)
            ok = [code for code in op["responses"] if code.startswith("2")]
            assert ok, (path, method)
            # path parameters are declared
            for name in (part[1:-1] for part in path.split("/") if part.startswith("{")):
                assert any(p["name"] == name and p["in"] == "path" for p in op.get("parameters", [])), (path, name)


def test_run_filters_are_documented(embedded_settings: Settings) -> None:
    doc, _ = _doc(embedded_settings)
    params = {p["name"]: p for p in doc["paths"]["/v1/runs"]["get"]["parameters"]}
    assert set(params) == set(FILTER_NAMES)
    for name in ("status", "sweep_id", "name", "tag", "dynamics", "sort", "cursor", "limit", "offset",
                 "created_after", "created_before", "regime"):  # fmt: skip
        assert name in params, name
    for name in RUN_RANGES:
        assert {name, f"{name}_min", f"{name}_max"} <= set(params), name
    for name in SUMMARY_RANGES:
        assert {f"{name}_min", f"{name}_max"} <= set(params), name
    for name, p in params.items():
        assert p["in"] == "query" and p.get("description"), name
    sort = _resolve(doc, params["sort"]["schema"])
    assert set(sort["enum"]) == set(SORTS) and sort.get("default") == "-created_at"
    assert params["status"]["schema"]["anyOf"][0]["type"] == "array"  # repeatable
    assert "422" in doc["paths"]["/v1/runs"]["get"]["responses"]


def test_sweep_filters_are_documented(embedded_settings: Settings) -> None:
    doc, _ = _doc(embedded_settings)
    params = {p["name"]: p for p in doc["paths"]["/v1/sweeps"]["get"]["parameters"]}
    assert set(params) == {"limit", "offset", "name", "tag"}
    for name, p in params.items():
        assert p["in"] == "query" and p.get("description"), name
    assert params["tag"]["schema"]["anyOf"][0]["type"] == "array"  # repeatable
    assert "422" in doc["paths"]["/v1/sweeps"]["get"]["responses"]


def test_response_models(embedded_settings: Settings) -> None:
    doc, _ = _doc(embedded_settings)

    def model(path: str, method: str, code: str) -> dict[str, Any]:
        content = doc["paths"][path][method]["responses"][code]["content"]["application/json"]
        return _resolve(doc, content["schema"])

    page = model("/v1/runs", "get", "200")
    assert {"items", "total", "limit", "offset", "next_cursor"} <= set(page["properties"])
    brief = _resolve(doc, page["properties"]["items"]["items"])
    assert {"id", "name", "tags", "status", "d", "gamma_w", "progress"} <= set(brief["properties"])
    run = model("/v1/runs/{run_id}", "get", "200")
    assert {"summaries", "request", "name", "tags", "error", "timings"} <= set(run["properties"])
    assert set(model("/v1/runs", "post", "202")["properties"]) == {"id", "status"}
    assert "id" in model("/v1/runs/{run_id}/cancel", "post", "200")["properties"]
    assert {"status", "counts", "progress", "axes", "base", "name", "tags"} <= set(
        model("/v1/sweeps/{sweep_id}", "get", "200")["properties"]
    )
    sweep_brief = _resolve(doc, model("/v1/sweeps", "get", "200")["properties"]["items"]["items"])
    assert {"id", "name", "tags", "status", "total"} <= set(sweep_brief["properties"])
    assert {"id", "total"} <= set(model("/v1/sweeps", "post", "202")["properties"])
    traj = doc["paths"]["/v1/runs/{run_id}/trajectory"]["get"]["responses"]["200"]["content"]
    assert {"application/json", "text/csv", "application/vnd.apache.parquet"} <= set(traj)
    figure = doc["paths"]["/v1/runs/{run_id}/figure"]["get"]["responses"]["200"]["content"]
    assert {"image/png", "image/svg+xml"} <= set(figure)


def test_request_bodies_have_examples(embedded_settings: Settings) -> None:
    doc, _ = _doc(embedded_settings)
    run_body = doc["paths"]["/v1/runs"]["post"]["requestBody"]["content"]["application/json"]
    examples = run_body["examples"]
    assert len(examples) >= 2 and all("value" in e and e.get("summary") for e in examples.values())
    labelled = [e["value"] for e in examples.values() if "tags" in e["value"]]
    assert labelled and "name" in labelled[0]
    schema = _resolve(doc, run_body["schema"])
    assert {"d", "rank", "gamma_w", "dynamics", "name", "tags"} <= set(schema["properties"])

    sweep_body = doc["paths"]["/v1/sweeps"]["post"]["requestBody"]["content"]["application/json"]
    sweep_schema = _resolve(doc, sweep_body["schema"])
    sweep_examples = [e["value"] for e in (sweep_body.get("examples") or {}).values()] + list(
        sweep_schema.get("examples") or []
    )
    assert sweep_examples and all({"base", "axes"} <= set(e) for e in sweep_examples)
    assert any(e.get("tags") and e.get("name") for e in sweep_examples)
    assert {"name", "tags"} <= set(sweep_schema["properties"])
    # every request body of the API has an example somewhere
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                body = op["requestBody"]["content"]["application/json"]
                schema = _resolve(doc, body["schema"])
                assert body.get("examples") or body.get("example") or schema.get("examples"), (path, method)

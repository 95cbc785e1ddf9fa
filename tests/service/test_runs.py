"""/v1/runs in process (TestClient) on the embedded default: submit, cache, validation, read, list, cancel,
and the trajectory after the worker's task ran (called here, with real dynamics)."""

from __future__ import annotations

import io
import json
import uuid
from datetime import datetime, timedelta

import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from core import Settings
from dynamics import TRAJECTORY_COLUMNS, SimulationRequest, simulate
from service.main import create_app
from tests.service.conftest import make_client
from workers.tasks import execute_run

BODY = {"d": 10, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 20, "dynamics": ["gd", "self_consistent"]}


def _queued_messages(settings: Settings) -> list[dict]:
    folder = settings.broker_folder / "queue"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.msg"))]


def test_submit_queues_only_the_run_id(client: TestClient, embedded_settings: Settings) -> None:
    r = client.post("/v1/runs", json=BODY)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued"
    assert r.headers["location"] == f"/v1/runs/{body['id']}"
    (msg,) = _queued_messages(embedded_settings)
    assert msg["properties"]["delivery_info"]["routing_key"] == "cpu"
    assert msg["headers"]["task"] == "lindyn.simulate_run"
    assert json.loads(__import__("base64").b64decode(msg["body"]))[0] == [body["id"]]


def test_cupy_requests_go_to_the_gpu_queue(client: TestClient, embedded_settings: Settings) -> None:
    assert client.post("/v1/runs", json={**BODY, "backend": "cupy"}).status_code == 202
    (msg,) = _queued_messages(embedded_settings)
    assert msg["properties"]["delivery_info"]["routing_key"] == "gpu"


def test_same_request_returns_the_existing_run_unless_forced(client: TestClient) -> None:
    first = client.post("/v1/runs", json=BODY).json()
    # the same normalised request, written differently (direct width instead of gamma_w)
    again = client.post("/v1/runs", json={**{k: v for k, v in BODY.items() if k != "gamma_w"}, "width": 100})
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert again.headers["location"] == f"/v1/runs/{first['id']}"
    forced = client.post("/v1/runs", params={"force": "true"}, json=BODY)
    assert forced.status_code == 202 and forced.json()["id"] != first["id"]
    other_seed = client.post("/v1/runs", json={**BODY, "seed": 1})
    assert other_seed.status_code == 202


def test_a_cancelled_run_is_not_reused(client: TestClient) -> None:
    first = client.post("/v1/runs", json=BODY).json()
    assert client.post(f"/v1/runs/{first['id']}/cancel").status_code == 200
    again = client.post("/v1/runs", json=BODY)
    assert again.status_code == 202 and again.json()["id"] != first["id"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({**BODY, "rank": 11}, "rank", "between 1 and d"),
        ({**BODY, "d": 1}, "d", "greater than or equal to 2"),
        ({k: v for k, v in BODY.items() if k != "gamma_w"}, "gamma_w", "either gamma_w or width"),
        ({**BODY, "width": 5}, "gamma_w", "not both"),
        ({**BODY, "dynamics": ["gd", "sgd"]}, "dynamics", "gd"),
        ({**BODY, "stopping": "never"}, "stopping", "paper"),
        ({**BODY, "steps": 10**9}, "steps", "exceeds the limit"),
        ({**BODY, "unknown": 1}, "unknown", "not permitted"),
        ({**BODY, "init": "wishart", "gamma_w": 1.0}, "init", "wishart needs width"),
    ],
)
def test_invalid_requests_name_their_field(client: TestClient, body: dict, field: str, words: str) -> None:
    r = client.post("/v1/runs", json=body)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(e["field"] == field and words in e["msg"] and e["loc"][0] == "body" for e in errors), errors
    assert client.get("/v1/runs").json()["total"] == 0  # nothing stored


def test_limits_come_from_the_settings(embedded_settings: Settings) -> None:
    with make_client(embedded_settings.model_copy(update={"max_d": 8})) as c:
        r = c.post("/v1/runs", json=BODY)
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "d" and "limit of 8" in r.json()["detail"][0]["msg"]


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b""])
def test_body_that_is_not_a_request_object(client: TestClient, raw: bytes) -> None:
    r = client.post("/v1/runs", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][0] == "body"


def test_unknown_ids_are_404_with_a_message(client: TestClient) -> None:
    rid = uuid.uuid4()
    for path in (f"/v1/runs/{rid}", f"/v1/runs/{rid}/trajectory", "/v1/runs/not-a-uuid"):
        r = client.get(path)
        assert r.status_code == 404 and "not found" in r.json()["detail"], path
    r = client.post(f"/v1/runs/{rid}/cancel")
    assert r.status_code == 404 and str(rid) in r.json()["detail"]


def test_read_a_queued_run(client: TestClient) -> None:
    rid = client.post("/v1/runs", json=BODY).json()["id"]
    run = client.get(f"/v1/runs/{rid}").json()
    req = SimulationRequest.model_validate(BODY)
    assert run["status"] == "queued" and run["progress"] == {"step": 0, "total": 20}
    assert run["request"] == req.normalized() and run["cache_key"] == req.cache_key()
    assert run["regime"] == {"regime": "active", "theory_applies": True, "underparametrised": False}
    assert run["summaries"] == {} and run["comparison"] is None and run["error"] is None
    assert datetime.fromisoformat(run["created_at"]).utcoffset() == timedelta(0)  # UTC, also on SQLite
    r = client.get(f"/v1/runs/{rid}/trajectory")  # no rows yet: an empty partial trajectory
    assert r.status_code == 200 and r.headers["x-lindyn-partial"] == "true" and r.headers["x-lindyn-status"] == "queued"
    assert r.json() == {c: [] for c in TRAJECTORY_COLUMNS}


def test_list_pages_and_filters(client: TestClient) -> None:
    ids = [client.post("/v1/runs", json={**BODY, "seed": s}).json()["id"] for s in range(5)]
    page = client.get("/v1/runs", params={"limit": 2}).json()
    assert page["total"] == 5 and page["limit"] == 2 and len(page["items"]) == 2
    seen = []
    for offset in range(0, 5, 2):
        seen += [r["id"] for r in client.get("/v1/runs", params={"limit": 2, "offset": offset}).json()["items"]]
    assert sorted(seen) == sorted(ids)  # every run once
    client.post(f"/v1/runs/{ids[0]}/cancel")
    cancelled = client.get("/v1/runs", params={"status": "cancelled"}).json()
    assert [r["id"] for r in cancelled["items"]] == [ids[0]]
    for params in ({"status": "done"}, {"limit": 0}, {"limit": 100000}, {"offset": -1}, {"sweep_id": "x"}):
        r = client.get("/v1/runs", params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"][0]["field"] == next(iter(params)), r.json()


def test_cancel(client: TestClient) -> None:
    rid = client.post("/v1/runs", json=BODY).json()["id"]
    r = client.post(f"/v1/runs/{rid}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["finished_at"]
    again = client.post(f"/v1/runs/{rid}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
    assert client.get(f"/v1/runs/{rid}/trajectory").status_code == 409


def test_finished_run_and_its_trajectory_equal_dynamics(client: TestClient, embedded_settings: Settings) -> None:
    rid = client.post("/v1/runs", json=BODY).json()["id"]
    assert execute_run(uuid.UUID(rid), embedded_settings) == "succeeded"
    expected = simulate(SimulationRequest.model_validate(BODY))

    run = client.get(f"/v1/runs/{rid}").json()
    assert run["status"] == "succeeded" and run["progress"] == {"step": 20, "total": 20}
    assert run["summaries"] == {k: v.as_dict() for k, v in expected.summaries.items()}
    assert run["comparison"] == expected.comparison.as_dict()
    assert run["regime"] == expected.regime and run["backend"] == expected.backend and run["lr"] == expected.lr
    assert set(run["timings"]) == set(expected.timings)

    traj = client.get(f"/v1/runs/{rid}/trajectory")
    assert traj.status_code == 200 and traj.headers["content-type"] == "application/json"
    assert traj.json() == expected.trajectory_columns()
    assert list(traj.json()) == list(TRAJECTORY_COLUMNS)

    only_sc = client.get(f"/v1/runs/{rid}/trajectory", params={"dynamics": "self_consistent"}).json()
    assert only_sc == expected.trajectory_columns(["self_consistent"])

    csv = client.get(f"/v1/runs/{rid}/trajectory", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(csv.text)), pd.DataFrame(expected.trajectory_columns()))

    parquet = client.get(f"/v1/runs/{rid}/trajectory", params={"format": "parquet"})
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(parquet.content))
    assert table.to_pydict() == expected.trajectory_columns()

    bad = client.get(f"/v1/runs/{rid}/trajectory", params={"dynamics": "lazy"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "dynamics"
    assert "did not run lazy" in bad.json()["detail"][0]["msg"]
    for params in ({"format": "xml"}, {"dynamics": "sgd"}):
        r = client.get(f"/v1/runs/{rid}/trajectory", params=params)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["query", next(iter(params))]
    assert client.post(f"/v1/runs/{rid}/cancel").status_code == 409


def test_diverged_run_serves_its_trajectory(client: TestClient, embedded_settings: Settings) -> None:
    body = {"d": 8, "rank": 2, "gamma_sigma2": -1.0, "gamma_w": 2.0, "steps": 50, "lr": 5.0}
    rid = client.post("/v1/runs", json=body).json()["id"]
    assert execute_run(uuid.UUID(rid), embedded_settings) == "diverged"
    expected = simulate(SimulationRequest.model_validate(body))
    run = client.get(f"/v1/runs/{rid}").json()
    assert run["status"] == "diverged" and run["summaries"]["gd"]["diverged_step"] == 4
    assert client.get(f"/v1/runs/{rid}/trajectory").json() == expected.trajectory_columns()


def test_enqueue_failure_is_503_and_the_run_failed(embedded_settings: Settings) -> None:
    settings = embedded_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    with make_client(settings) as c:
        r = c.post("/v1/runs", json=BODY)
        assert r.status_code == 503 and "queue" in r.json()["detail"]
        (run,) = c.get("/v1/runs").json()["items"]
        full = c.get(f"/v1/runs/{run['id']}").json()
    assert full["status"] == "failed" and "could not enqueue" in full["error"]


def test_openapi_documents_the_request(embedded_settings: Settings) -> None:
    with TestClient(create_app(embedded_settings)) as c:
        doc = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    post = doc["paths"]["/v1/runs"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert set(SimulationRequest.model_fields) <= set(schema["properties"])
    assert {"202", "200", "422"} <= set(post["responses"])
    assert {"/health", "/v1/version", "/v1/runs/{run_id}", "/v1/runs/{run_id}/trajectory",
            "/v1/runs/{run_id}/cancel"} <= set(doc["paths"])

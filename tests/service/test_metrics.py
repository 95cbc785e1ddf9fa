"""GET /metrics: request latency per route, runs by status, run durations from the database, Redis queues."""

from __future__ import annotations

import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from models import Settings
from tests.own_redis import RedisServer, own_redis  # noqa: F401 - a fixture
from tests.service.conftest import make_client
from workers.tasks import execute_run

BODY = {"d": 10, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 20}


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics(db_url: str, embedded_settings: Settings) -> None:
    """On SQLite and PostgreSQL (the run durations are computed by each database)."""
    settings = embedded_settings.model_copy(update={"database_url": db_url})
    with make_client(settings) as client:
        _check_metrics(client, settings)


def _check_metrics(client: TestClient, embedded_settings: Settings) -> None:
    ids = [client.post("/v1/runs", json={**BODY, "seed": i}).json()["id"] for i in range(3)]
    assert execute_run(uuid.UUID(ids[0]), embedded_settings) == "succeeded"
    client.post(f"/v1/runs/{ids[1]}/cancel")
    client.get(f"/v1/runs/{ids[0]}")
    client.get(f"/v1/runs/{uuid.uuid4()}")
    client.get("/no/such/path")
    m = scrape(client)
    runs = {dict(k[1])["status"]: v for k, v in m.items() if k[0] == "lindyn_runs"}
    assert runs == {"queued": 1, "running": 0, "succeeded": 1, "failed": 0, "diverged": 0, "cancelled": 1}
    assert m[("lindyn_run_duration_seconds_count", (("status", "succeeded"),))] == 1
    assert m[("lindyn_run_duration_seconds_bucket", (("le", "+Inf"), ("status", "succeeded")))] == 1
    assert m[("lindyn_run_duration_seconds_sum", (("status", "succeeded"),))] > 0

    def count(method: str, route: str, status: str) -> float:
        key = (("method", method), ("route", route), ("status", status))
        return m.get(("lindyn_http_request_duration_seconds_count", key), 0)

    assert count("POST", "/v1/runs", "202") == 3
    assert count("GET", "/v1/runs/{run_id}", "200") == 1 and count("GET", "/v1/runs/{run_id}", "404") == 1
    assert count("GET", "unmatched", "404") == 1
    assert not any(k[0] == "lindyn_queue_length" for k in m)  # filesystem broker: no queue figures


def test_metrics_redis_queue_depth(
    embedded_settings: Settings, own_redis: RedisServer, tmp_path: Path  # noqa: F811
) -> None:
    settings = embedded_settings.model_copy(update={"broker_url": own_redis.url})
    with make_client(settings) as client:
        for i in range(2):
            assert client.post("/v1/runs", json={**BODY, "seed": i}).status_code == 202
        assert client.post("/v1/runs", json={**BODY, "seed": 5, "backend": "cupy"}).status_code == 202
        m = scrape(client)
        assert m[("lindyn_queue_length", (("queue", "cpu"),))] == 2
        assert m[("lindyn_queue_length", (("queue", "gpu"),))] == 1
        assert m[("lindyn_queue_unacked", ())] == 0
        own_redis.kill()  # the broker away: the scrape still answers, without queue figures
        m = scrape(client)
        assert ("lindyn_queue_length", (("queue", "cpu"),)) not in m and m[("lindyn_runs", (("status", "queued"),))] == 3

"""GET /metrics: request latency per route, runs by status, run and task durations from the database, Redis
queues."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from core import Settings, get_sessionmaker, session_scope
from core.jobs import SIMULATE_BATCH_TASK, SIMULATE_RUN_TASK
from models.base import utcnow
from models.executions import TaskOutcome, record_task_execution
from service.metrics import RUN_BUCKETS
from tests.own_redis import RedisServer, own_redis  # noqa: F401 - a fixture
from tests.service.conftest import make_client
from workers.tasks import execute_run, simulate_batch_runs, simulate_run
import workers.tasks

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


def test_task_durations(db_url: str, embedded_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """lindyn_task_duration_seconds{task,outcome}, from task_executions, on SQLite and PostgreSQL."""
    settings = embedded_settings.model_copy(update={"database_url": db_url})
    monkeypatch.setattr(workers.tasks, "get_settings", lambda: settings)
    with make_client(settings) as client:
        ids = [client.post("/v1/runs", json={**BODY, "seed": i}).json()["id"] for i in range(2)]
        assert simulate_run.apply(args=[ids[0]]).get() == "succeeded"
        assert simulate_run.apply(args=[ids[0]]).get() == "skipped"  # delivered again
        assert set(simulate_batch_runs.apply(args=[ids]).get().values()) == {"skipped", "succeeded"}
        # and tasks of known durations, to check the buckets
        with session_scope(get_sessionmaker(db_url)) as s:
            for task, outcome, duration_s in [
                (SIMULATE_RUN_TASK, TaskOutcome.failed, 0.3), (SIMULATE_RUN_TASK, TaskOutcome.failed, 7.0),
                (SIMULATE_BATCH_TASK, TaskOutcome.partial, 200.0),
            ]:
                now = utcnow()
                record_task_execution(s, task=task, runs=1, outcome=outcome, duration_s=duration_s,
                                      started_at=now - timedelta(seconds=duration_s), finished_at=now)
        m = scrape(client)

    def series(suffix: str, task: str, outcome: str, le: str | None = None) -> float:
        labels = {"task": task, "outcome": outcome, **({"le": le} if le else {})}
        return m[(f"lindyn_task_duration_seconds_{suffix}", tuple(sorted(labels.items())))]

    counts = {
        (labels["task"], labels["outcome"]): v
        for (name, key), v in m.items() if name == "lindyn_task_duration_seconds_count" for labels in [dict(key)]
    }
    assert counts == {
        (SIMULATE_RUN_TASK, "succeeded"): 1, (SIMULATE_RUN_TASK, "nothing"): 1, (SIMULATE_RUN_TASK, "failed"): 2,
        (SIMULATE_BATCH_TASK, "succeeded"): 1, (SIMULATE_BATCH_TASK, "partial"): 1,
    }
    assert series("sum", SIMULATE_RUN_TASK, "succeeded") > 0
    assert series("bucket", SIMULATE_RUN_TASK, "nothing", "+Inf") == 1
    failed = [series("bucket", SIMULATE_RUN_TASK, "failed", str(b)) for b in RUN_BUCKETS]
    assert failed == [0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]  # 0.3 s and 7 s against 0.1, 0.5, 1, 5, 10, ...
    assert series("bucket", SIMULATE_RUN_TASK, "failed", "+Inf") == 2
    assert series("sum", SIMULATE_RUN_TASK, "failed") == pytest.approx(7.3)
    assert series("bucket", SIMULATE_BATCH_TASK, "partial", "60.0") == 0
    assert series("bucket", SIMULATE_BATCH_TASK, "partial", "300.0") == 1


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

"""``GET /metrics`` in the Prometheus text format.

- ``lindyn_http_request_duration_seconds``: a histogram per route template, method and status, measured by
  a pure ASGI middleware in this process (unmatched paths are one ``route="unmatched"``, so random URLs
  cannot blow up the label set).
- ``lindyn_runs{status}``: runs by status, counted in the database when scraped.
- ``lindyn_queue_length{queue}`` and ``lindyn_queue_unacked``: messages waiting in each Redis queue and
  taken but not acknowledged; absent with the embedded filesystem broker (nothing cheap and exact to count).
- ``lindyn_run_duration_seconds{status}``: a histogram of how long runs took (finished_at - started_at of
  the last attempt), computed from the runs table when scraped.
- ``lindyn_task_duration_seconds{task,outcome}``: a histogram of how long worker tasks took, by Celery task
  name and outcome (models/executions.py: succeeded, partial, failed, cancelled, nothing), computed from the
  task_executions table when scraped. A task is not a run: a sweep's chunk task runs many runs as one batch,
  and a task may store no result at all (a copy delivered again, a cancelled or failed run).

Why run and task durations come from the database: the workers are other processes, often on other
machines, so a histogram they observe cannot be read from the API's registry; Prometheus' multiprocess mode
only joins processes sharing one directory on one host, and a per-worker exporter means another port per
worker to discover. Every run records when it started and finished, and every task writes one row when it
ends, in the one place every process writes to, so the API computes the histograms there on each scrape:
exact, restart-proof, and nothing else to deploy. The cost is one aggregate query over each table per
scrape. The runs table holds one row per run; task_executions one per task delivered (a batch is one row
for many runs; a copy delivered again is one more), and the workers' reaper deletes its rows older than
LINDYN_TASK_HISTORY_DAYS (30 by default; indexed on finished_at), so it holds only that many days of tasks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from core.jobs import QUEUES
from core.settings import Settings
from models.aggregates import DurationSeries, run_durations, runs_by_status, task_durations
from service.security import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RUN_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)


class LatencyMiddleware:
    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.histogram.labels(scope.get("method", ""), template, str(status)).observe(
                time.perf_counter() - start
            )


def duration_histogram(
    name: str, documentation: str, label_names: list[str], series: list[DurationSeries]
) -> HistogramMetricFamily:
    """A Prometheus histogram (RUN_BUCKETS) of the series the database counted (models/aggregates.py)."""
    hist = HistogramMetricFamily(name, documentation, labels=label_names)
    for one in series:
        buckets = [(str(b), float(c)) for b, c in zip(RUN_BUCKETS, one.cumulative)]
        buckets.append(("+Inf", float(one.count)))
        hist.add_metric(list(one.labels), buckets, one.total)
    return hist


class DatabaseCollector(Collector):
    """Runs by status, run and task durations, from the database; queue lengths from Redis."""

    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.factory = factory
        self._redis: Any = None

    def collect(self) -> Iterator[Metric]:
        try:
            with self.factory() as session:
                yield from self._runs(session)
                yield duration_histogram(
                    "lindyn_task_duration_seconds", "how long worker tasks took, by how they ended",
                    ["task", "outcome"], task_durations(session, RUN_BUCKETS),
                )
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is away
            log.warning("metrics: the database could not be read", exc_info=True)
        yield from self._queues()

    def _runs(self, session: Session) -> Iterator[Metric]:
        runs = GaugeMetricFamily("lindyn_runs", "runs by status", labels=["status"])
        for status, n in runs_by_status(session).items():
            runs.add_metric([status], float(n))
        yield runs
        yield duration_histogram(
            "lindyn_run_duration_seconds", "how long finished runs took (last attempt)", ["status"],
            run_durations(session, RUN_BUCKETS),
        )

    def _queues(self) -> Iterator[Metric]:
        broker = self.settings.broker
        if broker.split("://", 1)[0] not in ("redis", "rediss"):
            return
        try:
            import redis

            if self._redis is None:
                self._redis = redis.Redis.from_url(broker, socket_timeout=2, socket_connect_timeout=2)
            pipe = self._redis.pipeline()
            for q in QUEUES:
                pipe.llen(q)
            pipe.hlen("unacked")
            *lengths, unacked = pipe.execute()
        except Exception:  # noqa: BLE001 - the broker may be away: no queue figures this time
            log.warning("metrics: the broker could not be read", exc_info=True)
            self._redis = None
            return
        queue = GaugeMetricFamily("lindyn_queue_length", "messages waiting in each queue", labels=["queue"])
        for q, n in zip(QUEUES, lengths):
            queue.add_metric([q], float(n))
        yield queue
        yield GaugeMetricFamily("lindyn_queue_unacked", "messages taken by a worker, not yet acknowledged",
                                value=float(unacked))


def install(app: FastAPI, settings: Settings) -> None:
    """The latency middleware and the ``/metrics`` route, with a registry of this app's own."""
    registry = CollectorRegistry()
    histogram = Histogram(
        "lindyn_http_request_duration_seconds", "HTTP request latency", ["method", "route", "status"],
        buckets=LATENCY_BUCKETS, registry=registry,
    )
    registry.register(DatabaseCollector(settings, app.state.sessionmaker))
    app.state.metrics_registry = registry
    app.add_middleware(LatencyMiddleware, histogram=histogram)  # type: ignore[arg-type]

    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(router)

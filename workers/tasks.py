"""The task: run one stored request and write its result. Only the run id comes through the broker."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from dynamics import SimulationRequest, simulate
from models import Settings, get_sessionmaker, get_settings, session_scope
from models.crud import claim_run, fail_run, record_progress, store_result
from models.jobs import SIMULATE_RUN_TASK
from workers.celery_app import celery_app

log = logging.getLogger(__name__)


class RunCancelled(Exception):
    """Raised from the progress callback to stop a run that was cancelled while running."""


class ProgressWriter:
    """The progress callback: writes at most every ``interval_s`` (dynamics calls it a bounded number of
    times already) and stops the run when it finds it no longer running."""

    def __init__(self, settings: Settings, run_id: uuid.UUID) -> None:
        self.factory = get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)
        self.run_id = run_id
        self.interval_s = settings.progress_interval_s
        self.last = time.monotonic()
        self.writes = 0

    def __call__(self, step: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval_s and step < total:
            return
        self.last = now
        self.writes += 1
        with session_scope(self.factory) as session:
            still_running = record_progress(session, self.run_id, step, total)
        if not still_running:
            raise RunCancelled(str(self.run_id))


def load_request(stored: dict[str, Any], settings: Settings) -> SimulationRequest:
    """The stored (normalised) request, checked against this worker's limits. Validation of a normalised
    request is idempotent: every value comes back exactly as submitted."""
    return SimulationRequest.model_validate(stored, context={"limits": settings.limits})


def execute_run(run_id: uuid.UUID, settings: Settings | None = None) -> str:
    """Claim the run, simulate it, store the result; returns the final status (or ``skipped``)."""
    settings = settings or get_settings()
    factory = get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)
    with session_scope(factory) as session:
        run = claim_run(session, run_id)
        if run is None:
            log.info("run %s is not queued or running: skipped", run_id)
            return "skipped"
        stored_request = dict(run.request)
    try:
        request = load_request(stored_request, settings)
        result = simulate(request, progress=ProgressWriter(settings, run_id))
    except RunCancelled:
        log.info("run %s was cancelled while running", run_id)
        return "cancelled"
    except Exception as exc:
        log.exception("run %s failed", run_id)
        with session_scope(factory) as session:
            fail_run(session, run_id, f"{type(exc).__name__}: {exc}")
        return "failed"
    try:
        with session_scope(factory) as session:
            status = store_result(session, run_id, result)
    except Exception as exc:
        log.exception("run %s: writing the result failed", run_id)
        with session_scope(factory) as session:
            fail_run(session, run_id, f"storing the result failed: {type(exc).__name__}: {exc}")
        return "failed"
    return status.value if status is not None else "cancelled"


@celery_app.task(name=SIMULATE_RUN_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def simulate_run(run_id: str) -> str:
    return execute_run(uuid.UUID(run_id))

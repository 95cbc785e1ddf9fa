"""The tasks: run one stored request (``simulate_run``), or a chunk of a sweep's runs as one stacked batch
(``simulate_batch_runs``), and write each run's result. Only run ids come through the broker. Each task, when
it ends, records how long it took and how it ended (``task_executions``, models/executions.py)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from celery import Task
from sqlalchemy.orm import Session, sessionmaker

from core import Settings, get_sessionmaker, get_settings, session_scope
from core.db import in_transaction, is_disconnect
from core.jobs import SIMULATE_BATCH_TASK, SIMULATE_RUN_TASK
from dynamics import SimulationRequest, SimulationResult, Trajectory, simulate, simulate_batch
from models.base import utcnow
from models.executions import SKIPPED, TaskOutcome, record_task_execution, task_outcome
from models.results import store_live_rows, store_result
from models.runs import (
    claim_run,
    claim_runs,
    count_running,
    fail_run,
    fail_runs,
    record_batch_progress,
    record_progress,
)
from workers.celery_app import celery_app, task_blas_threads
from workers.refinement import after_runs

log = logging.getLogger(__name__)


class RunCancelled(Exception):
    """Raised from the progress callback to stop a run that was cancelled while running."""


class ProgressWriter:
    """The progress callback: writes at most every ``interval_s`` (dynamics calls it a bounded number of
    times already) and stops the run when it finds it no longer running. With ``attempt`` (the run's attempt
    its claim made), also the rows callback (``rows``): the rows recorded meanwhile are kept and stored with
    the progress, in its transaction (live rows: readable while the run runs, at a bounded cost)."""

    def __init__(self, settings: Settings, run_id: uuid.UUID, attempt: int | None = None) -> None:
        self.factory = get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)
        self.run_id = run_id
        self.run_ids = [run_id]
        self.attempts = {run_id: attempt}
        self.interval_s = settings.progress_interval_s
        self.last = time.monotonic()
        self.writes = 0
        self.pending: dict[uuid.UUID, list[tuple[str, Trajectory]]] = {}

    def rows(self, index: int, name: str, piece: Trajectory) -> None:
        """dynamics' rows callback: keep the piece until the next progress write."""
        self.pending.setdefault(self.run_ids[index], []).append((name, piece))

    def store_rows(self, session: Session, running: dict[uuid.UUID, int]) -> None:
        """Store, in the session's transaction, the pending rows of the runs still running the attempt this
        worker claimed (``running``: run -> its attempt now, from the progress write just made). The pending
        rows are cleared once the transaction committed."""
        pieces = [(run_id, name, piece) for run_id, attempt in running.items()
                  if attempt == self.attempts.get(run_id) for name, piece in self.pending.get(run_id, [])]  # fmt: skip
        if pieces:
            store_live_rows(session, pieces)

    def __call__(self, step: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval_s and step < total:
            return
        self.last = now
        self.writes += 1
        if not self.write(step, total):
            raise RunCancelled(str(self.run_id))

    def write(self, step: int, total: int) -> bool:
        """Write the progress and the pending rows; False when the run is no longer running."""

        def write(session: Session) -> bool:
            attempt = record_progress(session, self.run_id, step, total)
            if attempt is None:
                return False
            self.store_rows(session, {self.run_id: attempt})
            return True

        running = in_transaction(self.factory, write)
        self.pending.clear()
        return running


class BatchProgressWriter(ProgressWriter):
    """The progress callback of a batch: ``simulate_batch`` counts point-steps (each point counts up to its
    own steps); from that count, the step the batch reached, written to each of its runs still running. The
    batch stops when none is (all cancelled); a run cancelled alone is skipped when the results are written."""

    def __init__(self, settings: Settings, run_ids: Sequence[uuid.UUID], steps: Sequence[int],
                 attempts: Sequence[int] | None = None) -> None:
        super().__init__(settings, run_ids[0])
        self.run_ids = list(run_ids)
        self.steps = list(steps)
        given: list[int | None] = list(attempts) if attempts is not None else [None] * len(self.run_ids)
        self.attempts = dict(zip(self.run_ids, given, strict=True))

    def write(self, step: int, total: int) -> bool:
        with session_scope(self.factory) as session:
            running = record_batch_progress(session, self.run_ids, batch_step(step, self.steps))
            self.store_rows(session, running)
        self.pending.clear()
        return bool(running)


class CancelWatch:
    """A daemon thread that looks every ``interval_s`` whether any of the runs is still running, and the
    checkpoint the step loop calls before every step: it only reads a flag (no I/O), and raises RunCancelled
    once the thread found none running (cancelled: by a single cancel, or the sweep's). So a cancelled run
    stops within one step of being seen, however rarely it reports progress, and frees its worker."""

    def __init__(self, settings: Settings, run_ids: Sequence[uuid.UUID]) -> None:
        self.factory = get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)
        self.run_ids = list(run_ids)
        self.interval_s = settings.cancel_poll_interval_s
        self.cancelled = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="lindyn-cancel-watch", daemon=True)

    def __call__(self) -> None:
        if self.cancelled.is_set():
            raise RunCancelled(str(self.run_ids[0]))

    def __enter__(self) -> CancelWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                with self.factory() as session:
                    if count_running(session, self.run_ids) == 0:
                        self.cancelled.set()
                        return
            except Exception:  # noqa: BLE001 - the database away for a moment: look again next time
                log.warning("looking for a cancel of %d run(s) failed", len(self.run_ids), exc_info=True)


def batch_step(done: int, steps: Sequence[int]) -> int:
    """The smallest i with sum(min(s, i) for s in steps) >= done: the step a batch of points with these
    step limits reached after ``done`` point-steps."""
    lo, hi = 0, max(steps, default=0)
    while lo < hi:
        mid = (lo + hi) // 2
        if sum(min(s, mid) for s in steps) >= done:
            hi = mid
        else:
            lo = mid + 1
    return lo


def load_request(stored: dict[str, Any], settings: Settings) -> SimulationRequest:
    """The stored (normalised) request, checked against this worker's limits. Validation of a normalised
    request is idempotent: every value comes back exactly as submitted."""
    return SimulationRequest.model_validate(stored, context={"limits": settings.limits})


def execute_run(run_id: uuid.UUID, settings: Settings | None = None) -> str:
    """Claim the run, simulate it, store the result; returns the final status (or ``skipped``)."""
    settings = settings or get_settings()
    factory = get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)

    def claim(session: Session) -> tuple[dict[str, Any], int] | None:
        run = claim_run(session, run_id, fresh_s=settings.stale_after_s,  # not a live run twice
                        max_attempts=settings.max_attempts)  # nor a run that kills its worker for ever
        return None if run is None else (dict(run.request), run.attempts)

    claimed = in_transaction(factory, claim)  # retried on a dropped connection, like every write
    if claimed is None:
        log.info("run %s is not queued or running: skipped", run_id)
        return SKIPPED
    stored_request, attempt = claimed
    try:
        request = load_request(stored_request, settings)
        progress = ProgressWriter(settings, run_id, attempt)
        with CancelWatch(settings, [run_id]) as watch, task_blas_threads([request.d], [request.backend]) as threads:
            result = simulate(request, progress=progress, checkpoint=threads.checkpoint(watch),
                              rows=progress.rows if settings.live_rows else None)
    except RunCancelled:
        log.info("run %s was cancelled while running", run_id)
        return "cancelled"
    except Exception as exc:
        log.exception("run %s failed", run_id)
        with session_scope(factory) as session:
            fail_run(session, run_id, f"{type(exc).__name__}: {exc}")
        return "failed"
    return write_result(factory, run_id, result)


def write_result(factory: sessionmaker[Session], run_id: uuid.UUID, result: SimulationResult) -> str:
    """Store one run's result in a transaction of its own; its final status, ``cancelled`` when it was
    cancelled meanwhile (nothing written), ``failed`` when writing failed (the run says why)."""
    try:
        # retried in a fresh transaction if the connection drops (replaces the rows: nothing is doubled)
        status = in_transaction(factory, lambda session: store_result(session, run_id, result))
    except Exception as exc:
        log.exception("run %s: writing the result failed", run_id)
        with session_scope(factory) as session:
            fail_run(session, run_id, f"storing the result failed: {type(exc).__name__}: {exc}")
        return "failed"
    return status.value if status is not None else "cancelled"


def execute_batch(run_ids: Sequence[uuid.UUID], settings: Settings | None = None) -> dict[str, str]:
    """Claim the runs, simulate those that may run as one ``simulate_batch``, store each result as
    ``execute_run`` does; each run's final status (``skipped`` for a run that was not queued or running)."""
    settings = settings or get_settings()
    factory = get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)
    outcome = {str(run_id): SKIPPED for run_id in run_ids}

    def claim(session: Session) -> list[tuple[uuid.UUID, dict[str, Any], int]]:
        runs = claim_runs(session, run_ids, fresh_s=settings.stale_after_s,  # not a live run twice
                          max_attempts=settings.max_attempts)  # nor one that kills its worker for ever
        return [(run.id, dict(run.request), run.attempts) for run in runs]

    claimed = in_transaction(factory, claim)  # retried on a dropped connection, like every write
    requests: dict[uuid.UUID, SimulationRequest] = {}
    attempts = {run_id: attempt for run_id, _, attempt in claimed}
    for run_id, stored, _ in claimed:
        try:
            requests[run_id] = load_request(stored, settings)
        except Exception as exc:
            log.exception("run %s failed", run_id)
            with session_scope(factory) as session:
                fail_run(session, run_id, f"{type(exc).__name__}: {exc}")
            outcome[str(run_id)] = "failed"
    if not requests:
        return outcome
    ids = list(requests)
    progress = BatchProgressWriter(settings, ids, [r.steps for r in requests.values()], [attempts[i] for i in ids])
    try:
        batch = list(requests.values())
        with (
            CancelWatch(settings, ids) as watch,
            task_blas_threads([r.d for r in batch], [r.backend for r in batch]) as threads,
        ):
            results = simulate_batch(batch, progress=progress, checkpoint=threads.checkpoint(watch),
                                     rows=progress.rows if settings.live_rows else None)
    except RunCancelled:
        log.info("batch of %d runs was cancelled while running", len(ids))
        outcome.update({str(run_id): "cancelled" for run_id in ids})
        return outcome
    except Exception as exc:
        log.exception("batch of %d runs failed", len(ids))
        with session_scope(factory) as session:
            fail_runs(session, ids, f"{type(exc).__name__}: {exc}")
        outcome.update({str(run_id): "failed" for run_id in ids})
        return outcome
    for run_id, result in zip(ids, results, strict=True):
        outcome[str(run_id)] = write_result(factory, run_id, result)
    return outcome


@contextmanager
def recorded(task: Task, settings: Settings, runs: int) -> Iterator[list[str]]:
    """Time the block, then record the task's execution: its outcome from the final statuses of its runs, which
    the block appends to the list it is given (``failed`` if the block raised). Written after the results, in a
    transaction of its own; a failure to write it is logged, never raised."""
    statuses: list[str] = []
    started_at, start = utcnow(), time.perf_counter()
    outcome = TaskOutcome.failed
    try:
        yield statuses
        outcome = task_outcome(statuses)
    finally:
        duration_s, finished_at = time.perf_counter() - start, utcnow()

        def write(session: Session) -> None:
            record_task_execution(
                session, task=task.name, celery_task_id=task.request.id, worker=f"{socket.gethostname()}/{os.getpid()}",
                runs=runs, outcome=outcome, started_at=started_at, finished_at=finished_at, duration_s=duration_s,
            )

        try:
            in_transaction(get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms), write, delays=(0.2, 1.0))
        except Exception:  # noqa: BLE001 - the runs' results are stored; only this record is lost
            log.exception("task %s (%s): its execution could not be recorded", task.name, task.request.id)


@contextmanager
def retried_when_database_down(task: Task) -> Iterator[None]:
    """A task whose database stayed unreachable through ``in_transaction``'s retries (its claim failed, so
    nothing ran) is sent again later rather than acknowledged as done: ``task.retry`` publishes a copy with a
    countdown before the original is acknowledged. After ``DB_DOWN_RETRIES`` copies it gives up; the reaper
    sends the runs again once the database is back (they are still queued)."""
    try:
        yield
    except Exception as exc:
        if not is_disconnect(exc):
            raise
        log.warning("task %s: the database is unreachable (%s); sent again in %ds", task.request.id,
                    type(exc).__name__, DB_DOWN_COUNTDOWN_S)
        raise task.retry(exc=exc, countdown=DB_DOWN_COUNTDOWN_S, max_retries=DB_DOWN_RETRIES) from exc


#: a task that found the database down is sent again after this long, at most this many times
DB_DOWN_COUNTDOWN_S = 5
DB_DOWN_RETRIES = 20


@celery_app.task(name=SIMULATE_RUN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def simulate_run(self: Task, run_id: str) -> str:
    settings = get_settings()
    with retried_when_database_down(self), recorded(self, settings, runs=1) as statuses:
        statuses.append(execute_run(uuid.UUID(run_id), settings))
    after_runs(settings, celery_app, [uuid.UUID(run_id)])  # a refining sweep's next round, once its runs finished
    return statuses[0]


@celery_app.task(name=SIMULATE_BATCH_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def simulate_batch_runs(self: Task, run_ids: list[str]) -> dict[str, str]:
    settings = get_settings()
    with retried_when_database_down(self), recorded(self, settings, runs=len(run_ids)) as statuses:
        outcome = execute_batch([uuid.UUID(r) for r in run_ids], settings)
        statuses.extend(outcome.values())
    after_runs(settings, celery_app, [uuid.UUID(r) for r in run_ids])  # a refining sweep's next round
    return outcome

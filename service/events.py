"""Server-sent events (text/event-stream) of a run or a sweep, until it ends.

A stream reads the database every ``LINDYN_EVENTS_POLL_INTERVAL_S`` (a session per read, none held in
between) and sends what changed:

- ``status``: the run (or sweep) as ``GET /v1/runs/{id}`` (``/v1/sweeps/{id}``) answers it, when its status,
  progress or attempt changed (a sweep: its counts per status);
- ``rows`` (runs): the trajectory rows stored since the last event, as the columnar JSON of
  ``/trajectory?spectrum=true`` (``dynamics``, ``step``, the metrics, ``s_1..s_d`` when any of them has a
  spectrum);
- ``reset`` (runs): the run was claimed again (retried or requeued): its rows were replaced, drop those sent;
- ``end``: it finished (its final status), or is gone; the stream then closes.

A comment line (``: keepalive``) goes out after ``LINDYN_EVENTS_HEARTBEAT_S`` without an event. Event ids are
monotonic: a run's is ``attempt * 2**32 + (last step sent + 1)``, a sweep's the number of its runs finished.
A client that reconnects with ``Last-Event-ID`` gets the status again and only the rows after that id.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session, joinedload, sessionmaker
from starlette.concurrency import run_in_threadpool

from core.db import is_disconnect
from dynamics import TRAJECTORY_COLUMNS
from models import Run, Sweep
from models.results import decode_spectrum, live_rows
from models.sweeps import sweep_states
from service.schemas.runs import RunRead, finite_or_none
from service.schemas.sweeps import SweepRead

log = logging.getLogger(__name__)

MEDIA_TYPE = "text/event-stream"
#: a run's event id: attempt * STEP_SPAN + (last step sent + 1); steps are 32-bit integers
STEP_SPAN = 2**32
RUN_TERMINAL = ("succeeded", "diverged", "failed", "cancelled")
SWEEP_TERMINAL = ("finished", "cancelled")
#: the OpenAPI description of an events endpoint's 200
EVENTS_RESPONSE: dict[str, Any] = {"content": {MEDIA_TYPE: {"schema": {"type": "string"}}}}


def event_text(event: str, data: Any, event_id: int | None = None) -> str:
    """One event: ``id:``, ``event:`` and ``data:`` (compact JSON on one line, non-finite numbers as null)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    return f"{head}event: {event}\ndata: {body}\n\n"


def run_cursor(last_event_id: str | None) -> tuple[int | None, int]:
    """(attempt, last step sent) of a run's ``Last-Event-ID``; (None, -1) when absent or not one of ours."""
    try:
        value = int(last_event_id or "")
    except ValueError:
        return None, -1
    if value < 0:
        return None, -1
    return value // STEP_SPAN, value % STEP_SPAN - 1


def run_event_id(attempt: int, step: int) -> int:
    return attempt * STEP_SPAN + step + 1


def rows_columns(rows: list[Any]) -> dict[str, list[Any]]:
    """The columnar JSON of trajectory rows (dynamics, step, *METRIC_COLUMNS, spectrum bytes or None), as the
    trajectory's JSON export with ``spectrum=true`` has it: s_1..s_d where any row has a spectrum."""
    out = {c: [finite_or_none(r[i]) for r in rows] for i, c in enumerate(TRAJECTORY_COLUMNS)}
    spectra = [decode_spectrum(r[-1]) if r[-1] is not None else None for r in rows]
    width = max((s.size for s in spectra if s is not None), default=0)
    for j in range(width):
        out[f"s_{j + 1}"] = [finite_or_none(float(s[j])) if s is not None else None for s in spectra]
    return out


@dataclass
class _RunStream:
    """What a run's stream sent so far: the attempt whose rows it sent, the last step, the last status."""

    attempt: int | None
    after: int
    seen: tuple[Any, ...] | None = None
    events: list[str] = field(default_factory=list)
    done: bool = False

    def poll(self, factory: sessionmaker[Session], run_id: uuid.UUID) -> None:
        """Read the run, then its new rows (in that order: rows read after a final status are complete)."""
        with factory() as session:
            run = session.get(Run, run_id, options=(joinedload(Run.summaries),), populate_existing=True)
            if run is None:
                self.events.append(event_text("end", {"status": "gone"}))
                self.done = True
                return
            if self.attempt != run.attempts:
                if self.attempt is not None and self.after >= 0:
                    self.events.append(event_text("reset", {"attempts": run.attempts},
                                                  run_event_id(run.attempts, -1)))
                self.attempt, self.after = run.attempts, -1
            state = (run.status, run.progress_step, run.progress_total, run.attempts)
            if state != self.seen:
                self.seen = state
                self.events.append(event_text("status", RunRead.of(run).model_dump(mode="json"),
                                              run_event_id(run.attempts, self.after)))
            rows = live_rows(session, run, self.after)
            if run.status not in RUN_TERMINAL:  # rows of a progress write committed after the run was read
                rows = [r for r in rows if r[1] <= run.progress_step]  # wait for the status that goes with them
            if rows:
                self.after = max(r[1] for r in rows)
                self.events.append(event_text("rows", rows_columns(rows), run_event_id(run.attempts, self.after)))
            if run.status in RUN_TERMINAL:
                self.events.append(event_text("end", {"status": str(run.status)}, run_event_id(run.attempts, self.after)))
                self.done = True


@dataclass
class _SweepStream:
    seen: tuple[Any, ...] | None = None
    events: list[str] = field(default_factory=list)
    done: bool = False

    def poll(self, factory: sessionmaker[Session], sweep_id: uuid.UUID) -> None:
        with factory() as session:
            sweep = session.get(Sweep, sweep_id, populate_existing=True)
            if sweep is None:
                self.events.append(event_text("end", {"status": "gone"}))
                self.done = True
                return
            read = SweepRead.of(sweep, sweep_states(session, [sweep.id])[sweep.id])
        state = (read.status, tuple(sorted(read.counts.items())))
        if state != self.seen:
            self.seen = state
            self.events.append(event_text("status", read.model_dump(mode="json"), read.progress.finished))
        if read.status in SWEEP_TERMINAL:
            self.events.append(event_text("end", {"status": read.status}, read.progress.finished))
            self.done = True


async def _stream(poll: Callable[[], None], pending: list[str], done: Callable[[], bool],
                  poll_s: float, heartbeat_s: float) -> AsyncIterator[str]:
    """Poll (in the thread pool) every ``poll_s`` and send what it queued; a comment after ``heartbeat_s``
    of silence; stop once ``done()``. A poll that finds the database away (a dropped connection) is tried
    again at the next one."""
    yield f"retry: {int(poll_s * 2000)}\n\n"  # the browser's EventSource reconnects after this long
    last = time.monotonic()
    while True:
        try:
            await run_in_threadpool(poll)
        except Exception as exc:
            if not is_disconnect(exc):
                raise
            log.warning("an event stream could not read the database (%s); trying again", type(exc).__name__)
        if pending:
            text = "".join(pending)
            pending.clear()
            yield text
            last = time.monotonic()
        if done():
            return
        if time.monotonic() - last >= heartbeat_s:
            yield ": keepalive\n\n"
            last = time.monotonic()
        await anyio.sleep(poll_s)


def _response(body: AsyncIterator[str]) -> StreamingResponse:
    # no caching, and no buffering by nginx-like proxies
    return StreamingResponse(body, media_type=MEDIA_TYPE,
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def run_events(factory: sessionmaker[Session], run_id: uuid.UUID, last_event_id: str | None,
               poll_s: float, heartbeat_s: float) -> StreamingResponse:
    """The events of a run (see the module), from ``last_event_id`` on."""
    state = _RunStream(*run_cursor(last_event_id))
    return _response(_stream(lambda: state.poll(factory, run_id), state.events, lambda: state.done,
                             poll_s, heartbeat_s))


def sweep_events(factory: sessionmaker[Session], sweep_id: uuid.UUID, poll_s: float,
                 heartbeat_s: float) -> StreamingResponse:
    """The events of a sweep: its status and counts when they change, until it finished or was cancelled."""
    state = _SweepStream()
    return _response(_stream(lambda: state.poll(factory, sweep_id), state.events, lambda: state.done,
                             poll_s, heartbeat_s))

"""Starting a sweep's next refinement round (models/refinement.py) and sending its runs: by the worker that
stored the last run of a round, and by the reaper for a round whose start was lost."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from core import Settings, get_sessionmaker
from core.db import in_transaction
from core.jobs import SIMULATE_BATCH_TASK, chunks, queue_for
from dynamics import SimulationRequest
from models.refinement import advance_refinement, refining_sweeps_of, stalled_refinements

log = logging.getLogger(__name__)


def start_rounds(settings: Settings, app: Any, sweep_ids: Sequence[uuid.UUID]) -> int:
    """Start the next round of each sweep whose round is over (once: see models/refinement.py) and send its
    runs in chunks as a sweep's are; how many runs were sent. A chunk that cannot be sent stays queued and
    the reaper sends it again."""
    factory = get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)
    sent = 0
    for sweep_id in sweep_ids:

        def advance(session: Session, sid: uuid.UUID = sweep_id) -> tuple[list[uuid.UUID], list[SimulationRequest]]:
            return advance_refinement(session, sid, settings.limits)

        ids, requests = in_transaction(factory, advance)
        for backend, chunk in chunks(ids, requests, settings.sweep_chunk_size, settings.processes * settings.tasks_per_process,
                                     settings.max_run_bytes or None):
            try:
                app.send_task(SIMULATE_BATCH_TASK, args=[[str(r) for r in chunk]], queue=queue_for(backend))
            except Exception:  # noqa: BLE001 - stranded queued runs: the reaper sends them again
                log.exception("sweep %s: a chunk of %d refined runs could not be sent", sweep_id, len(chunk))
                continue
            sent += len(chunk)
    return sent


def after_runs(settings: Settings, app: Any, run_ids: Sequence[uuid.UUID]) -> int:
    """After a task stored its runs: start the next round of their refining sweeps whose round is over.
    Never raises (the reaper starts a round this missed)."""
    try:
        factory = get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)
        sweeps = in_transaction(factory, lambda s: refining_sweeps_of(s, run_ids))
        return start_rounds(settings, app, sweeps) if sweeps else 0
    except Exception:  # noqa: BLE001
        log.exception("starting the next refinement round after %d run(s) failed", len(run_ids))
        return 0


def recover_rounds(settings: Settings, app: Any) -> int:
    """The reaper's part: start the rounds of refining sweeps with no run queued or running."""
    factory = get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)
    return start_rounds(settings, app, in_transaction(factory, stalled_refinements))

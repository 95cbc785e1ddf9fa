"""Runs in the test database for the worker tests: queue some, read one back."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from core import Settings, get_sessionmaker, session_scope
from dynamics import SimulationRequest
from models import Run
from models.runs import new_run


def queued_runs(settings: Settings, requests: list[SimulationRequest]) -> list[uuid.UUID]:
    """Store a queued run per request; their ids."""
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        runs = [new_run(r) for r in requests]
        s.add_all(runs)
    return [r.id for r in runs]


def get_run(session: Session, run_id: uuid.UUID) -> Run:
    run = session.get(Run, run_id)
    assert run is not None
    return run


def stored_run(settings: Settings, run_id: uuid.UUID) -> Run:
    """The run with its summaries loaded, detached from its (closed) session."""
    with get_sessionmaker(settings.db_url)() as s:
        run = get_run(s, run_id)
        _ = run.summaries
        return run

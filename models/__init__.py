"""SQLAlchemy 2 ORM: the tables (tables.py, keys.py) and the queries on them, in modules named for what they
hold: runs (runs.py), sweeps (sweeps.py), results and the spectrum codec (results.py), finding runs and sweeps
(queries.py), the workers' task records (executions.py), stale runs (reaper.py), API keys (keys.py). SQL lives
here and nowhere else. Engines and sessions are the core's (core/db.py). The schema is created only by the
Alembic migrations in migrations/."""

from models.base import RUN_STATUSES, Base, RunStatus
from models.keys import ApiKey  # noqa: F401 - the api_keys table belongs to the metadata
from models.tables import Run, RunSummary, RunTag, Sweep, SweepTag, TaskExecution, TrajectoryPoint

__all__ = [
    "RUN_STATUSES",
    "ApiKey",
    "Base",
    "Run",
    "RunStatus",
    "RunSummary",
    "RunTag",
    "Sweep",
    "SweepTag",
    "TaskExecution",
    "TrajectoryPoint",
]

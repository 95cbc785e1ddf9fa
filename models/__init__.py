"""SQLAlchemy 2 ORM: the tables (tables.py), engines and sessions (db.py), the operations the service and
workers perform on them (crud.py), the record of the workers' tasks (executions.py), and the shared settings
(settings.py). The schema is created only by the Alembic migrations in migrations/."""

from models.base import RUN_STATUSES, Base, RunStatus
from models.db import dispose_engines, get_sessionmaker, make_engine, session_scope
from models.settings import Settings, get_settings
from models.keys import ApiKey  # noqa: F401 - the api_keys table belongs to the metadata
from models.tables import Run, RunSummary, RunTag, Sweep, SweepTag, TaskExecution, TrajectoryPoint

__all__ = [
    "RUN_STATUSES",
    "Base",
    "Run",
    "RunStatus",
    "RunSummary",
    "RunTag",
    "Settings",
    "Sweep",
    "SweepTag",
    "TaskExecution",
    "TrajectoryPoint",
    "dispose_engines",
    "get_sessionmaker",
    "get_settings",
    "make_engine",
    "session_scope",
]

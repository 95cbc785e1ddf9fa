"""What every server process shares (the API, the workers, ``lindyn serve|worker|migrate|keys``): the one
settings object (settings.py, ``LINDYN_*``), the contract between the service and the workers (jobs.py: task
names, queues, the Celery configuration) and the database's engines, sessions and retried transactions
(db.py). It imports neither FastAPI nor Celery; the light client (``pip install lindyn``) never imports it."""

from core.db import dispose_engines, get_sessionmaker, in_transaction, make_engine, session_scope
from core.settings import Settings, get_settings

__all__ = [
    "Settings",
    "dispose_engines",
    "get_sessionmaker",
    "get_settings",
    "in_transaction",
    "make_engine",
    "session_scope",
]

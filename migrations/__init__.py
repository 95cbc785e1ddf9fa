"""Alembic migrations: the only source of the database schema. Run them with ``lindyn migrate``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

SCRIPT_LOCATION = Path(__file__).resolve().parent
#: the PostgreSQL advisory lock (a 64-bit key) that serialises migrations of one database (migrations/env.py)
ADVISORY_LOCK_KEY = 0x6C696E64796E  # "lindyn"


def alembic_config(url: str) -> Config:
    """An Alembic configuration for ``url`` that works from an installed package (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.attributes["url"] = url
    return cfg


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """One migration of a SQLite file at a time: an exclusive lock (``fcntl.flock``) on ``<file>.migrate-lock``
    beside it, held while Alembic runs (two ``lindyn serve`` or ``lindyn migrate`` started at once on a fresh
    directory would both create ``alembic_version``). PostgreSQL is serialised by an advisory lock inside the
    migration's transaction (env.py); other databases, and platforms without fcntl, take no lock."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".migrate-lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, or the process dies
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade(url: str, revision: str = "head") -> None:
    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    with migration_lock(url):
        command.downgrade(alembic_config(url), revision)

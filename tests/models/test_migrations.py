"""The schema comes only from the migrations: upgrade head, downgrade base, upgrade head; the ORM matches."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from core import make_engine
import migrations
from models import Base

TABLES = {"sweeps", "sweep_tags", "runs", "run_tags", "run_summaries", "trajectory_points", "task_executions"}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    assert TABLES <= _tables(db_url)  # db_url is migrated to head
    migrations.downgrade(db_url, "base")
    assert _tables(db_url) & TABLES == set()
    migrations.upgrade(db_url, "head")
    assert TABLES <= _tables(db_url)


def test_orm_matches_migrations(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []

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


def test_sweeps_before_0007_get_their_seed_axes_as_replicates(db_url: str) -> None:
    """0007 adds sweeps.replicates: a sweep stored before gets its seed and task_seed axes (the default)."""
    import json
    import uuid

    from sqlalchemy import text

    migrations.downgrade(db_url, "0006_reliability_guards")
    ids = [uuid.uuid4(), uuid.uuid4()]
    axes = [{"gamma_w": [1.5, 2.0], "task_seed": [0, 1], "seed": [0, 1]}, {"gamma_w": [1.5, 2.0]}]
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            for sid, a in zip(ids, axes, strict=True):
                conn.execute(text("INSERT INTO sweeps (id, created_at, base_request, axes, total) "
                                  "VALUES (:id, CURRENT_TIMESTAMP, '{}', :axes, 8)"),
                             {"id": sid.hex if engine.dialect.name == "sqlite" else sid, "axes": json.dumps(a)})
        migrations.upgrade(db_url, "head")
        with engine.connect() as conn:
            got = dict(conn.execute(text("SELECT id, replicates FROM sweeps")).all())
    finally:
        engine.dispose()
    replicates = {str(uuid.UUID(str(k))): v if isinstance(v, list) else json.loads(v) for k, v in got.items()}
    assert replicates == {str(ids[0]): ["task_seed", "seed"], str(ids[1]): []}

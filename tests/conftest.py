"""Shared fixtures: databases (SQLite files, fresh PostgreSQL databases), settings.

PostgreSQL is the machine's real server (LINDYN_TEST_POSTGRES_URL), each test on a database of its own; a test
that needs Redis starts a redis-server of its own (tests/own_redis.py), so no test shares or flushes another's
queues. When a server is unreachable its tests skip locally and FAIL in CI (CI=true).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from core import Settings
import migrations

CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("LINDYN_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/postgres")


def unavailable(what: str, exc: BaseException) -> None:
    """Skip locally; fail in CI, where the services must be there."""
    message = f"{what} unreachable: {type(exc).__name__}: {exc}"
    if CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped afterwards); its URL."""
    with fresh_postgres_database() as url:
        yield url


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database, give its URL, drop it afterwards (skip/fail if the server is down)."""
    admin_url = make_url(POSTGRES_URL)
    name = f"lindyn_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        unavailable(f"PostgreSQL at {admin_url.render_as_string(hide_password=True)}", exc)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'lindyn.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database on SQLite and on PostgreSQL."""
    url = sqlite_url(tmp_path) if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    migrations.upgrade(url)
    return url


@pytest.fixture
def embedded_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings of the embedded default under a temporary DATA_DIR (nothing read from the environment)."""
    for key in list(os.environ):
        if key.startswith("LINDYN_") and not key.startswith("LINDYN_TEST_"):
            monkeypatch.delenv(key)
    return Settings(data_dir=tmp_path / "data")

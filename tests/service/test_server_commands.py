"""`lindyn migrate`, `lindyn worker`, `lindyn serve` argument handling (the processes themselves run in tests/e2e)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from core import get_settings, make_engine
from lindyn.cli import app
from lindyn.commands.server import _base_url, _safe_url


@pytest.fixture
def fresh_settings(embedded_settings: object) -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_migrate_creates_the_schema(tmp_path: Path, fresh_settings: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINDYN_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "revision head" in result.output
    engine = make_engine(f"sqlite:///{tmp_path / 'lindyn.db'}")
    assert {"runs", "trajectory_points", "alembic_version"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_worker_rejects_unknown_queues() -> None:
    result = CliRunner().invoke(app, ["worker", "--queues", "cpu,tpu"])
    assert result.exit_code == 2 and "queues must be among cpu, gpu" in result.output


def test_urls_are_printed_without_passwords() -> None:
    hidden = _safe_url("postgresql+psycopg://lindyn:secret@db:5432/lindyn")
    assert hidden == "postgresql+psycopg://lindyn:***@db:5432/lindyn"
    assert "secret" not in _safe_url("redis://:secret@redis:6379/0")
    assert _safe_url("filesystem://") == "filesystem://"


def test_the_printed_base_url_brackets_an_ipv6_address() -> None:
    assert _base_url("127.0.0.1", 41234) == "http://127.0.0.1:41234"
    assert _base_url("::1", 8000) == "http://[::1]:8000"

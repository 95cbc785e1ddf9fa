"""`lindyn migrate`, `lindyn worker`, `lindyn serve` argument handling (the processes themselves run in tests/e2e)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from core import get_settings, make_engine
from lindyn.cli import app
from lindyn.commands.server import _safe_url


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


def test_serve_listens_where_lindyn_host_and_port_say_unless_flags_say_otherwise(
    tmp_path: Path, fresh_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run PORT=8123` passes --port; LINDYN_HOST / LINDYN_PORT are the defaults (uvicorn itself replaced
    by a recorder: the real server runs in tests/e2e, where --port 0 prints the port it got)."""
    import signal

    import uvicorn

    monkeypatch.setattr(signal, "signal", lambda *a: None)  # serve's SIGTERM handler stays out of pytest
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    monkeypatch.setenv("LINDYN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LINDYN_HOST", "127.0.0.2")
    monkeypatch.setenv("LINDYN_PORT", "8123")
    result = CliRunner().invoke(app, ["serve", "--no-worker"])
    assert result.exit_code == 0, result.output
    assert "lindyn API: http://127.0.0.2:8123  docs: http://127.0.0.2:8123/docs" in result.output
    assert (calls[-1]["host"], calls[-1]["port"]) == ("127.0.0.2", 8123)
    result = CliRunner().invoke(app, ["serve", "--no-worker", "--port", "8124", "--host", "127.0.0.3"])
    assert result.exit_code == 0, result.output
    assert (calls[-1]["host"], calls[-1]["port"]) == ("127.0.0.3", 8124)
    assert CliRunner().invoke(app, ["serve", "--port", "70000"]).exit_code == 2

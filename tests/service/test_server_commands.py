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


def test_serve_listens_where_lindyn_host_and_port_say_unless_flags_say_otherwise(
    tmp_path: Path, fresh_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run PORT=...` passes --port; LINDYN_HOST / LINDYN_PORT are the defaults (uvicorn's serving replaced
    by a recorder of the socket it was given: the real server runs in tests/e2e)."""
    import signal
    import socket

    import uvicorn

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    monkeypatch.setattr(signal, "signal", lambda *a: None)  # serve's SIGTERM handler stays out of pytest
    calls: list[tuple[str, int]] = []

    def fake_run(self: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        assert sockets is not None
        calls.append(sockets[0].getsockname()[:2])
        self.started = True

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    monkeypatch.setenv("LINDYN_DATA_DIR", str(tmp_path))
    first, second = free_port(), free_port()
    monkeypatch.setenv("LINDYN_HOST", "127.0.0.2")
    monkeypatch.setenv("LINDYN_PORT", str(first))
    result = CliRunner().invoke(app, ["serve", "--no-worker"])
    assert result.exit_code == 0, result.output
    assert f"API: http://127.0.0.2:{first}  docs: http://127.0.0.2:{first}/docs" in result.output
    assert calls[-1] == ("127.0.0.2", first)
    result = CliRunner().invoke(app, ["serve", "--no-worker", "--port", str(second), "--host", "127.0.0.3"])
    assert result.exit_code == 0, result.output
    assert calls[-1] == ("127.0.0.3", second)
    assert CliRunner().invoke(app, ["serve", "--port", "70000"]).exit_code == 2

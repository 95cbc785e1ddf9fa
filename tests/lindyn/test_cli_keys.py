"""``lindyn keys create|list|revoke`` against a migrated SQLite file; ``lindyn serve`` says whether auth is on."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from core import Settings, get_settings
from lindyn.cli import app
from lindyn.commands.server import _auth_line
import migrations


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LINDYN_DATA_DIR", str(tmp_path / "data"))
    for key in ("LINDYN_DATABASE_URL", "LINDYN_BROKER_URL", "LINDYN_API_KEYS", "LINDYN_AUTH_READS"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    settings = get_settings()
    migrations.upgrade(settings.db_url)
    yield settings
    get_settings.cache_clear()


def test_create_list_revoke(env: Settings) -> None:
    runner = CliRunner()
    assert "auth: OFF" in _auth_line(env)
    created = runner.invoke(app, ["keys", "create", "--name", "ci"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    assert key.startswith("ldk_") and len(key) > 40
    assert "auth: ON" in _auth_line(env) and "1 in the database" in _auth_line(env) and key not in _auth_line(env)
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0 and "ci" in listed.stdout and key[:12] in listed.stdout
    assert key not in listed.stdout  # only the prefix is shown
    revoked = runner.invoke(app, ["keys", "revoke", key])
    assert revoked.exit_code == 0 and "revoked 1" in revoked.stdout
    assert runner.invoke(app, ["keys", "revoke", key]).exit_code == 1  # already revoked
    assert "revoked 20" in runner.invoke(app, ["keys", "list"]).stdout  # the revocation date


def test_unmigrated_database_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINDYN_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv("LINDYN_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        out = CliRunner().invoke(app, ["keys", "list"])
    finally:
        get_settings.cache_clear()
    assert out.exit_code == 1 and "lindyn migrate" in out.output

"""``pip install lindyn`` (no extras) is the light client: the Python client, the CLI's remote commands and
``lindyn simulate`` work without any package of the ``server`` extra.

How it is proved: not by a fresh virtual environment (minutes of installing on every run), but by running
the client and the CLI in a subprocess of this environment whose import system refuses every package of the
``server`` extra (read from pyproject.toml, so a server dependency added later is refused too) and lindyn's
own server packages (core, models, service, workers, migrations): a meta-path finder placed first raises
ModuleNotFoundError for them, as if they were not installed."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OURS = ("core", "models", "service", "workers", "migrations")


def _module(requirement: str) -> str:
    """The import name of a requirement: ``psycopg[binary]>=3.3`` -> psycopg, ``pydantic-settings`` ->
    pydantic_settings."""
    name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
    return name.lower().replace("-", "_")


SERVER_MODULES = sorted({_module(r) for r in PYPROJECT["project"]["optional-dependencies"]["server"]})
BLOCKED = (*SERVER_MODULES, "starlette", *OURS)

PRELUDE = f"""
import importlib.abc, sys
BLOCKED = {BLOCKED!r}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in the light client)", name=name)
        return None
sys.meta_path.insert(0, Refuse())
"""


def _light(code: str, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with the server's packages refused; sys.argv[1:] = argv."""
    return subprocess.run([sys.executable, "-c", PRELUDE + code, *argv], capture_output=True, text=True,
                          timeout=120, cwd=cwd)  # fmt: skip


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``lindyn ARGS`` with the server's packages refused."""
    code = "from lindyn.cli import app\napp(sys.argv[1:], prog_name='lindyn')\n"
    return _light(code, *args, cwd=cwd)


def test_the_base_install_lists_none_of_the_server_packages() -> None:
    base = {_module(r) for r in PYPROJECT["project"]["dependencies"]}
    assert {"fastapi", "celery", "sqlalchemy", "uvicorn", "alembic", "psycopg", "redis"} <= set(SERVER_MODULES)
    assert not base & set(SERVER_MODULES), base & set(SERVER_MODULES)
    assert {"httpx", "typer", "rich", "numpy", "pydantic"} <= base


def test_the_blocker_blocks() -> None:
    r = _light("import sqlalchemy")
    assert r.returncode == 1 and "blocked: not in the light client" in r.stderr


def test_lindyn_help_and_the_client_import_without_the_server() -> None:
    r = _cli("--help")
    assert r.returncode == 0, r.stderr
    for command in ("simulate", "submit", "runs", "sweep", "table", "serve"):
        assert command in r.stdout
    r = _light(
        "from lindyn import Client, NotFound, ValidationFailed\n"
        "from lindyn.client import Run, Sweep, ServiceUnavailable\n"
        "c = Client('http://127.0.0.1:1', retries=0)\n"
        "try:\n    c.run('x')\nexcept ServiceUnavailable as e:\n    print('unavailable', e.status_code)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED))\n"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["unavailable None", "[]"]


def test_simulate_without_the_server(tmp_path: Path) -> None:
    out = tmp_path / "traj.parquet"
    r = _cli("simulate", "--d", "8", "--rank", "2", "--gamma-sigma2", "-1.5", "--gamma-w", "2", "--steps", "10",
             "--dynamics", "gd,self_consistent", "--no-progress", "--json", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["request"]["d"] == 8 and set(summary["summaries"]) == {"gd", "self_consistent"}
    frame = pd.read_parquet(out)
    assert len(frame) == 2 * 11 and set(frame["dynamics"]) == {"gd", "self_consistent"}
    r = _cli("simulate", "--d", "8", "--rank", "9", "--gamma-sigma2", "-1.5", "--gamma-w", "2")
    assert r.returncode == 2 and "rank" in r.stderr


def _dead_server() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("args", [("runs",), ("status", "some-id"), ("sweeps", "--json")])
def test_remote_commands_without_the_server(args: tuple[str, ...]) -> None:
    """A remote command goes as far as the network (no service there: exit 1 and the client's message)."""
    r = _cli(*args, "--server", _dead_server())
    assert r.returncode == 1, r.stderr
    assert "cannot reach the lindyn service" in r.stderr and "blocked" not in r.stderr


def test_server_commands_say_what_to_install() -> None:
    r = _cli("migrate")
    assert r.returncode == 1
    assert "pip install 'lindyn[server]'" in r.stderr and "Traceback" not in r.stderr

"""docker-compose.yml: valid against the Compose specification, and every command it runs is a real
`lindyn` command (its subcommand and options parse)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import yaml
from typer.testing import CliRunner

from lindyn.cli import app

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "tests/data/compose-spec.json"  # the Compose Specification's schema (tests/data/NOTICE)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def _lindyn_commands(compose: dict[str, Any]) -> dict[str, list[str]]:
    out = {}
    for name, service in compose["services"].items():
        if str(service.get("image", "")).startswith("lindyn"):
            command = service["command"]
            assert isinstance(command, list), f"{name}: command should be a list (exec form)"
            out[name] = command
    return out


def test_every_command_is_a_real_lindyn_command(compose: dict[str, Any]) -> None:
    commands = _lindyn_commands(compose)
    assert set(commands) == {"migrate", "api", "worker-cpu", "worker-gpu"}
    group = typer.main.get_command(app)
    for name, command in commands.items():
        assert command[0] == "lindyn", f"{name} runs {command[0]!r}, not lindyn"
        sub, args = command[1], command[2:]
        assert sub in group.commands, f"{name}: `lindyn {sub}` does not exist"  # type: ignore[attr-defined]
        # the arguments parse (options exist, values convert) without running the command
        cmd = group.commands[sub]  # type: ignore[attr-defined]
        with cmd.make_context(sub, list(args)) as ctx:
            assert ctx.params is not None
        result = CliRunner().invoke(app, [sub, *args, "--help"])
        assert result.exit_code == 0, f"{name}: {result.output}"


def test_services_and_their_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "worker-cpu", "worker-gpu"} <= set(services)
    for name in ("postgres", "redis", "api", "worker-cpu", "worker-gpu"):
        assert "healthcheck" in services[name], name
    assert any(v.startswith("pgdata:") for v in services["postgres"]["volumes"])
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker-cpu", "worker-gpu"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully", name
        assert deps["redis"]["condition"] == deps["postgres"]["condition"] == "service_healthy", name
        env = services[name]["environment"]
        assert env["LINDYN_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["LINDYN_BROKER_URL"].startswith("redis://")
    (device,) = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert services["worker-gpu"]["build"]["target"] == "gpu"
    assert "--queues" in services["worker-gpu"]["command"] and "gpu" in services["worker-gpu"]["command"]
    assert (ROOT / "Dockerfile").exists()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "AS gpu" in dockerfile and "AS cpu" in dockerfile
    assert '".[server,gpu]"' in dockerfile and '".[server]"' in dockerfile  # the service and workers' extra
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    for package in (p.rstrip("*") for p in packages["include"]):  # the image holds every package installed
        assert f"COPY {package} /src/{package}" in dockerfile, package

"""The remote commands without a service: the request flags shared with simulate, bad arguments (exit 2),
no service at that address (exit 1, a clear message). Against the real service: tests/e2e/test_lab_tools.py."""

from __future__ import annotations

import socket

import pytest
import typer
from typer.testing import CliRunner

from lindyn.cli import app
from lindyn.client import axis_spec
from lindyn.commands.request_options import FIELDS

runner = CliRunner()


def _options(name: str) -> set[str]:
    group = typer.main.get_command(app)
    return {p.name for p in group.commands[name].params if p.name}  # type: ignore[attr-defined]


def _dead_server() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_submit_and_sweep_take_the_request_flags_of_simulate() -> None:
    request_flags = {*FIELDS, "dynamics", "config"}
    assert request_flags <= _options("simulate")
    assert request_flags <= _options("submit") and {"wait", "name", "tag", "server", "api_key", "json_output"} <= _options("submit")
    assert request_flags <= _options("sweep") and {"axis", "wait", "name", "tag"} <= _options("sweep")
    assert {"refine_metric", "refine_rounds", "refine_budget"} <= _options("sweep")
    assert {"name", "tag", "limit", "json_output"} <= _options("sweeps")
    for name in ("status", "wait", "runs", "sweeps", "fetch", "figure", "cancel", "table", "phase-diagram"):
        assert {"server", "api_key"} <= _options(name), name


def test_no_service_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lindyn.client.transport.time.sleep", lambda s: None)
    server = _dead_server()
    for args in (["status", "some-id"], ["runs"], ["sweeps"], ["submit", "--d", "10", "--rank", "2"], ["cancel", "x"]):
        r = runner.invoke(app, [*args, "--server", server])
        assert r.exit_code == 1, (args, r.output)
        assert f"error: cannot reach the lindyn service at {server}" in r.stderr
    r = runner.invoke(app, ["status", "x"], env={"LINDYN_SERVER": server})
    assert r.exit_code == 1 and server in r.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["submit", "--d", "10", "--tag", "novalue"], "key=value"),
        (["sweep", "--d", "10", "--axis", "seed=values:0,1", "--tag", "novalue"], "key=value"),
        (["sweep", "--d", "10", "--axis", "gamma_w"], "FIELD=linspace"),
        (["sweep", "--d", "10", "--axis", "gamma_w=linspace:1:2"], "linspace:START:STOP:N"),
        (["sweep", "--d", "10", "--axis", "seed=values:a,b"], "not a number"),
        (["sweep", "--d", "10", "--axis", "seed=values:0,1", "--refine-rounds", "1"], "for --refine-metric"),
        (["sweep", "--d", "10", "--axis", "seed=values:0,1", "--refine-budget", "5"], "for --refine-metric"),
        (["runs", "--where", "gamma_w_min"], "name=value"),
        (["fetch", "x", "--out", "t.xlsx"], ".xlsx"),
        (["figure", "x", "--out", "f.jpg"], ".jpg"),
        (["table", "x", "--out", "t.txt"], ".txt"),
        (["submit", "--config", "/nonexistent.json"], "cannot read"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], words: str) -> None:
    r = runner.invoke(app, [*args, "--server", _dead_server()])
    assert r.exit_code == 2, r.output
    assert words in r.output


def test_axis_specs() -> None:
    assert axis_spec("linspace:1.75:2.8:30") == {"linspace": [1.75, 2.8, 30]}
    assert axis_spec("values:0,1,2") == {"values": [0, 1, 2]}
    assert axis_spec("values:0.5,2") == {"values": [0.5, 2]}
    assert axis_spec((1, 2, 3)) == {"linspace": [1, 2, 3]}
    assert axis_spec([4, 5]) == {"values": [4, 5]}
    assert axis_spec({"values": [1]}) == {"values": [1]}
    with pytest.raises(ValueError, match="linspace:START:STOP:N"):
        axis_spec("range:1:2")


def test_replicate_options_and_their_query_parameters() -> None:
    """--replicates on sweep; --aggregate and --at on table and phase-diagram (--sd too) become the query
    parameters of the API (lindyn.client.resources.view_params)."""
    from lindyn.client.resources import view_params

    assert "replicates" in _options("sweep")
    assert {"aggregate", "at"} <= _options("table") and {"aggregate", "at", "sd"} <= _options("phase-diagram")
    assert view_params("seed", {"d": 200, "gamma_w": 1.5}) == [("aggregate", "seed"), ("at", "d:200"),
                                                               ("at", "gamma_w:1.5")]
    assert view_params(["seed", "task_seed"], "d:200") == [("aggregate", "seed"), ("aggregate", "task_seed"),
                                                           ("at", "d:200")]
    assert view_params([], None) == [("aggregate", "")]  # none: the replicates are not averaged over
    assert view_params(None, ["d:8", "seed:1"]) == [("at", "d:8"), ("at", "seed:1")]

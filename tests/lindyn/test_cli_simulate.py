"""``lindyn simulate``: flags, --config, --json, --out in each format, errors with non-zero exit."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dynamics import SimulationRequest, simulate
from lindyn.cli import app

ARGS = ["simulate", "--d", "10", "--rank", "2", "--gamma-sigma2", "-1.5", "--gamma-w", "2.0",
        "--dynamics", "gd,self_consistent", "--steps", "12", "--seed", "3"]  # fmt: skip
runner = CliRunner()


def _json(out: str) -> dict:
    return json.loads(out[out.index("{") :])


def test_json_summary_equals_dynamics() -> None:
    r = runner.invoke(app, [*ARGS, "--json"])
    assert r.exit_code == 0, r.output
    data = _json(r.stdout)
    assert set(data) >= {"request", "summaries", "comparison", "regime"}
    direct = simulate(SimulationRequest(d=10, rank=2, gamma_sigma2=-1.5, gamma_w=2.0,
                                        dynamics=["gd", "self_consistent"], steps=12, seed=3))  # fmt: skip
    assert data["summaries"]["gd"] == direct.summaries["gd"].as_dict()
    assert data["comparison"]["max_distance"] == direct.comparison.max_distance


@pytest.mark.parametrize("ext", [".csv", ".parquet", ".json"])
def test_out_writes_the_trajectory(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"traj{ext}"
    r = runner.invoke(app, [*ARGS, "--out", str(path), "--record-every", "3"])
    assert r.exit_code == 0, r.output
    if ext == ".csv":
        df = pd.read_csv(path)
    elif ext == ".parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.DataFrame(json.loads(path.read_text()))
    assert list(df.columns) == ["dynamics", "step", "train_error", "test_error", "stable_rank", "rank",
                                "gap_ratio", "n_above_threshold"]  # fmt: skip
    assert sorted(set(df["dynamics"])) == ["gd", "self_consistent"]
    assert df[df.dynamics == "gd"]["step"].tolist() == [0, 3, 6, 9, 12]
    direct = simulate(SimulationRequest(d=10, rank=2, gamma_sigma2=-1.5, gamma_w=2.0, dynamics=["gd"],
                                        steps=12, seed=3, record_every=3))  # fmt: skip
    np.testing.assert_allclose(df[df.dynamics == "gd"]["test_error"], direct.trajectories["gd"].metrics["test_error"], rtol=1e-15)


def test_config_file_and_flag_override(tmp_path: Path) -> None:
    cfg = tmp_path / "req.json"
    cfg.write_text(json.dumps({"d": 8, "rank": 1, "sigma2": 0.01, "width": 40, "steps": 5}))
    r = runner.invoke(app, ["simulate", "--config", str(cfg), "--steps", "7", "--gamma-w", "1.5", "--json"])
    assert r.exit_code == 0, r.output
    req = _json(r.stdout)["request"]
    assert req["steps"] == 7 and req["width"] == int(8**1.5) and req["sigma2"] == 0.01


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rank", "11"], "rank"),
        (["--dynamics", "sgd"], "dynamics"),
        (["--init", "wishart", "--gamma-w", "1.0"], "init"),
        (["--out", "x.txt"], "--out"),
        (["--config", "/nonexistent.json"], "config"),
    ],
)
def test_bad_input_exits_non_zero_with_message(extra: list[str], message: str) -> None:
    r = runner.invoke(app, [*ARGS, *extra])
    assert r.exit_code == 2
    assert message in r.output


def test_console_script_runs() -> None:
    """The installed entry point (not only the typer app object) works as a process."""
    out = subprocess.run(
        [sys.executable, "-m", "lindyn.cli", *ARGS, "--json"], capture_output=True, text=True, check=True
    ).stdout
    assert _json(out)["summaries"]["gd"]["steps_run"] == 12

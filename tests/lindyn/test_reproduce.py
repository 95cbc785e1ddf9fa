"""``lindyn reproduce``: the paper's settings, and a small Figure 2 end to end on a private embedded service."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from dynamics import SimulationRequest, simulate
from lindyn.cli import app
from lindyn.commands.reproduce import FIGURE1, figure2_request


def test_paper_settings() -> None:
    r = SimulationRequest.model_validate(FIGURE1)
    assert (r.d, r.rank, r.width) == (500, 5, int(500**2.25))
    assert abs(r.threshold / 500**0.4 - 1) < 1e-6  # sigma^2 w = d^-1.85 floor(d^2.25), about d^0.4 = 12
    assert r.gd_update == "sequential" and r.steps == 100  # the notebook's order; its 100 updates
    base, axes = figure2_request(200, 30, ["gd", "self_consistent"], 750)
    # the notebook's 750 iterations measure A_0..A_749: steps = 749 (tests/dynamics/test_paper_reference.py)
    assert base["lr_constant"] == 50 and base["stopping"] == "paper" and base["steps"] == 749
    assert base["gd_update"] == "sequential"
    assert axes == {"gamma_sigma2": {"linspace": [-2.2, -0.8, 30]}, "gamma_w": {"linspace": [1.75, 2.8, 30]}}


@pytest.mark.e2e
@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_reproduce_figure2_small_on_an_embedded_service(tmp_path: Path, fmt: str) -> None:
    """A 3 x 3 grid at d = 12 through `lindyn reproduce figure2 --embedded` (real API and worker processes):
    the figure decodes (the SVG names the theory's lines), the table has 9 rows equal to each point run alone."""
    r = CliRunner().invoke(
        app,
        ["reproduce", "figure2", "--embedded", "--out-dir", str(tmp_path), "--d", "12", "--grid", "3",
         "--iterations", "61", "--format", fmt],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout[r.stdout.index("{") :])
    assert report["points"] == 9 and report["counts"]["succeeded"] == 9
    if fmt == "png":
        with Image.open(tmp_path / "figure2.png") as img:
            img.load()
            assert img.format == "PNG" and img.size[0] > 500
    else:
        root = ET.fromstring((tmp_path / "figure2.svg").read_bytes())
        texts = "\n".join("".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text"))
        for label in ("active / lazy", "infinite noise", "underparametrised", "log max distance"):
            assert label in texts, label
    table = pd.read_parquet(tmp_path / "figure2.parquet")
    assert len(table) == 9
    base, _ = figure2_request(12, 3, ["gd", "self_consistent"], 61)
    assert base["steps"] == 60
    for row in table.to_dict("records"):
        alone = simulate(SimulationRequest(**{**base, "gamma_sigma2": row["gamma_sigma2"], "gamma_w": row["gamma_w"]}))
        for dyn in ("gd", "self_consistent"):
            expect = alone.summaries[dyn]
            assert row[f"{dyn}.min_test_error_step"] == expect.min_test_error_step
            # batched vs alone: equal up to round-off of differently blocked BLAS calls
            assert abs(row[f"{dyn}.min_test_error"] - expect.min_test_error) <= 1e-9 * expect.min_test_error
        assert abs(row["log_max_distance"] - alone.comparison.log_max_distance) <= 1e-6

"""bench/gpu_check.sh, the GPU machine's script, in its CPU dry mode (DRY_RUN=1: NumPy, small sizes, no
pytest -m gpu): every step runs, the embedded API and a `lindyn worker` (cpu queue here, gpu there) take
the Figure 2 sweep through HTTP, and the eight files the device tool brings back are written."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
FILES = {"summary.txt", "pytest_gpu.txt", "gpu_bench.log", "gpu_bench.json", "service.json", "service.log",
         "figure2.png", "figure2.csv"}  # fmt: skip


def test_gpu_check_dry_run_writes_every_result(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINDYN_")}
    env.update(DRY_RUN="1", PYTHON=sys.executable)
    done = subprocess.run(["bash", "bench/gpu_check.sh", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=400)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == FILES  # at most 8 files come back from the device machine
    summary = (out / "summary.txt").read_text()
    for step in ("install", "env", "service", "gpu_bench"):
        assert f"{step:<12s} rc=0" in summary, summary
    assert "status 0" in summary and "DECISION" in summary
    assert "skipped" in (out / "pytest_gpu.txt").read_text()

    service = json.loads((out / "service.json").read_text())
    assert service["ok"] is True and service["queue"] == "cpu" and service["backend"] == "numpy"
    assert service["counts"]["succeeded"] == 9 and service["first_run"]["backend"] == "numpy"
    assert service["wall_s"] > 0 and service["stop_reasons"]["self_consistent"]
    rows = list(csv.DictReader((out / "figure2.csv").open()))
    assert len(rows) == 9 and {r["status"] for r in rows} == {"succeeded"}
    assert all(float(r["self_consistent.min_test_error"]) > 0 for r in rows)
    assert (out / "figure2.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    bench = json.loads((out / "gpu_bench.json").read_text())
    assert bench["small"] is True and bench["parts"]["decision"]["winner"] in ("eigh", "newton_schulz")

"""The load benchmark (bench/load.py) runs, briefly, against a server it starts (embedded, real processes):
every phase reports, no 5xx, every accepted run finished. Its numbers are for the closing notes, not asserted."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e


def test_load_bench_runs_and_every_accepted_run_finishes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", "--duration", "4", "--clients", "2", "--drain", "300", "--twins", "10"],
        capture_output=True, text=True, timeout=500,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for phase in ("run-reads", "reads", "submits", "mixed"):
        assert re.search(rf"== {phase}: \d+ requests", out), out
    assert out.count("5xx: 0") == 4 and "API process CPU:" in out
    assert re.search(r"== identical submissions: 10 requests x 3 at once: statuses \{200: 20, 202: 10\}, 0 made more "
                     r"than one run", out), out
    accepted = re.search(r"(\d+)/(\d+) runs reached a terminal state", out)
    assert accepted is not None and accepted.group(1) == accepted.group(2), out

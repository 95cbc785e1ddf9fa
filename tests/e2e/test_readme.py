"""Every code block of README.md runs, as written, against a live embedded ``lindyn serve``.

The blocks (```sh, ```python, ```console) run in the README's order in one scratch folder: the shell blocks
with bash (``set -euo pipefail``; ``curl`` fails on an HTTP error status, ``--fail-with-body``), the Python
blocks in one namespace (the later ones use the earlier ones' ``sweep`` and ``run``, as in a notebook). What
is changed: the address ``localhost:8000`` / ``127.0.0.1:8000`` becomes the live service's, ``LINDYN_SERVER``
points the ``lindyn`` commands at it, and ``.venv`` in the scratch folder is this environment. A block that is
not meant to run says so right before it in the README, ``<!-- not run: reason -->``; this test lists those
and fails on a block that neither runs nor says why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import Processes, clean_env, start_serve

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
LANGUAGES = ("sh", "python", "console")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_NOT_RUN = re.compile(r"^<!-- not run: (.+?) -->$")
_ADDRESS = re.compile(r"(localhost|127\.0\.0\.1):8000\b")
BASH_PRELUDE = 'set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'


@dataclass
class Block:
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    not_run: str | None  # the reason given in the README, or None: it runs


def readme_blocks(text: str) -> list[Block]:
    """The README's fenced blocks in the languages that run, each with the reason it does not run, if any."""
    lines = text.splitlines()
    blocks = []
    for match in _FENCE.finditer(text):
        if match.group(1) not in LANGUAGES:
            continue
        line = text.count("\n", 0, match.start()) + 1
        before = lines[line - 2].strip() if line >= 2 else ""
        reason = _NOT_RUN.match(before)
        blocks.append(Block(line, match.group(1), match.group(2), reason.group(1) if reason else None))
    return blocks


def test_the_readme_blocks_are_found_and_the_skipped_ones_say_why() -> None:
    blocks = readme_blocks(README.read_text())
    assert len(blocks) >= 8
    skipped = {b.line: b.not_run for b in blocks if b.not_run}
    assert all(reason.strip() for reason in skipped.values())
    assert len(skipped) <= 3, skipped  # make run/test, MLflow (its own e2e test), production hosts
    text = "```sh\necho hi\n```\n<!-- not run: needs a GPU -->\n```python\nx = 1\n```\n"
    assert [(b.language, b.not_run) for b in readme_blocks(text)] == [("sh", None), ("python", "needs a GPU")]


def test_every_readme_block_runs_against_a_live_service(
    processes: Processes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = clean_env(LINDYN_DATA_DIR=str(tmp_path / "data"))
    api, _ = start_serve(processes, env)
    url = str(api.http.base_url).rstrip("/")
    address = url.removeprefix("http://")
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.prefix))  # `.venv/bin/lindyn simulate` in the README
    env.update(LINDYN_SERVER=url, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    monkeypatch.chdir(work)
    monkeypatch.setenv("LINDYN_SERVER", url)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    ran = []
    for block in readme_blocks(README.read_text()):
        if block.not_run:
            continue
        code = _ADDRESS.sub(address, block.code)
        if block.language == "python":
            try:
                exec(compile(code, f"README.md:{block.line}", "exec"), namespace)  # noqa: S102 - the README's own code
            except Exception as exc:  # noqa: BLE001 - reported with the block's line
                pytest.fail(f"README.md line {block.line} (python) raised {type(exc).__name__}: {exc}")
        else:
            done = subprocess.run(["bash", "-c", BASH_PRELUDE + code], cwd=work, env=env, capture_output=True,
                                  text=True, timeout=900)  # fmt: skip
            assert done.returncode == 0, (f"README.md line {block.line} ({block.language}) exited "
                                          f"{done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
        ran.append(block.line)
    assert len(ran) >= 5
    # what the blocks left behind is real: files written, and the runs deleted by the examples are gone
    for name in ("traj.parquet", "fig.png", "table.csv", "fig2.png", "figure2.png", "sweep.nc"):
        assert (work / name).stat().st_size > 0, name
    runs = api.http.get("/v1/runs", params={"limit": 500}).json()["items"]
    # the cancelled long runs and sweep were deleted by the examples; the first run too (curl -X DELETE)
    assert runs and {r["status"] for r in runs} == {"succeeded"}, [r["status"] for r in runs]
    assert not [r for r in runs if (r["d"], r["rank"]) == (30, 3) and r.get("sweep_id") is None]

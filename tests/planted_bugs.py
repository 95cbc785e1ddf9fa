"""Plant, one at a time, the bugs that issue 11 found the unit tests blind to, and check that the unit tests
now fail on each: ``python -m tests.planted_bugs [pytest paths...]`` (default: tests/dynamics).

Each bug is a textual edit of one source file, made in a scratch copy of the repository (the working tree is
never touched); the tests run there against the copy. Exit status 0 when every bug was caught (killed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: name -> [(file, original text, replacement)]: each original text must occur exactly once
BUGS: dict[str, list[tuple[str, str, str]]] = {
    "stopping rules from i >= 3 (scalar and vectorised)": [
        ("dynamics/stopping.py", "    if i > 3:\n        if test[i - 2]", "    if i >= 3:\n        if test[i - 2]"),
        ("dynamics/stopping.py", "        if i > 3:\n            rising", "        if i >= 3:\n            rising"),
    ],
    "plateau threshold 2e-3": [("dynamics/stopping.py", "PLATEAU_DELTA = 2e-4", "PLATEAU_DELTA = 2e-3")],
    "cache key ignores dtype": [
        ("dynamics/request.py", 'payload.pop("backend", None)', 'payload.pop("backend", None); payload.pop("dtype")'),
    ],
    "cache key ignores task_seed": [
        ("dynamics/request.py", 'payload.pop("backend", None)',
         'payload.pop("backend", None); payload.pop("task_seed")'),
    ],
    "cache key ignores steps": [
        ("dynamics/request.py", 'payload.pop("backend", None)', 'payload.pop("backend", None); payload.pop("steps")'),
    ],
    "maximal distance taken as the last distance": [
        ("dynamics/simulate.py", "mx = float(finite.max()) if finite.size", "mx = float(finite[-1]) if finite.size"),
    ],
    "distance multiplied by d": [
        ("dynamics/simulate.py", "dist = error(xp, A_gd[xp.asarray(p_gd)] - A_sc[xp.asarray(p_sc)], d)",
         "dist = error(xp, A_gd[xp.asarray(p_gd)] - A_sc[xp.asarray(p_sc)], d) * d"),
    ],
    "spectrum stored as s^2": [
        ("dynamics/simulate.py", "log.spec.append(s_host[j].astype(np.float64))",
         "log.spec.append(s_host[j].astype(np.float64) ** 2)"),
    ],
}


def _scratch_copy() -> Path:
    dest = Path(tempfile.mkdtemp(prefix="lindyn-planted-"))
    for name in ("dynamics", "tests", "service", "models", "workers", "lindyn", "migrations"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "alembic.ini"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    return dest


def _pytest(copy: Path, paths: list[str]) -> int:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not e2e and not gpu",
           *paths]  # fmt: skip
    return subprocess.run(cmd, cwd=copy, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode


def main(paths: list[str]) -> int:
    copy = _scratch_copy()
    try:
        assert _pytest(copy, paths) == 0, "the unit tests fail without any bug planted"
        survived = []
        for name, edits in BUGS.items():
            originals = {f: (copy / f).read_text() for f, _, _ in edits}
            for f, old, new in edits:
                text = (copy / f).read_text()
                assert text.count(old) == 1, f"{name}: {old!r} is not in {f} exactly once"
                (copy / f).write_text(text.replace(old, new))
            started = time.monotonic()
            rc = _pytest(copy, paths)
            for f, text in originals.items():
                (copy / f).write_text(text)
            verdict = "killed" if rc != 0 else "SURVIVED"
            print(f"{verdict:8}  {name}  ({time.monotonic() - started:.0f} s)", flush=True)
            if rc == 0:
                survived.append(name)
        print(f"{len(BUGS) - len(survived)} of {len(BUGS)} planted bugs killed")
        return 1 if survived else 0
    finally:
        shutil.rmtree(copy, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["tests/dynamics"]))

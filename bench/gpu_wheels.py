"""Wheels to carry to the GPU machine (which has no package index), and the ones it lacks.

    python -m bench.gpu_wheels download [--dest .whl]   # here: lindyn's run-time requirements, as installed here
    python -m bench.gpu_wheels missing [--dest .whl]    # there: the carried wheels whose package is not installed

``download`` walks lindyn's installed requirements (its extras' too: uvicorn[standard],
celery[redis,sqlalchemy]) with the markers of CPython 3.12 on Linux, takes each at the version installed
here (so the set is one that ran the tests), and downloads the x86-64 CPython 3.12 wheel of each with
``pip download --no-deps`` (pip's ordinary client). ``missing`` prints the paths of the carried wheels whose
distribution is not installed there, one a line: bench/gpu_check.sh installs exactly those (``--target``,
no index), so the image's own packages (NumPy, CuPy, pandas, ...) are never replaced.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]  # fmt: skip
#: already on the GPU image ('cuda'), large: never carried
ON_IMAGE = {"numpy", "pandas", "pyarrow", "matplotlib", "scipy", "pillow", "fonttools", "contourpy", "kiwisolver",
            "pytz", "tzdata", "python-dateutil", "six", "packaging", "cupy-cuda12x", "cupy-cuda13x"}  # fmt: skip
MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython"}  # fmt: skip


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str = "lindyn", extras: frozenset[str] = frozenset({"server"})) -> dict[str, str]:
    """{distribution: installed version} of ``root``'s run-time requirements with ``extras`` (the service and
    the workers: the server extra), transitively (extras named in a requirement included; the dev extra not)."""
    from packaging.requirements import Requirement

    seen: dict[str, str] = {}
    todo: list[tuple[str, frozenset[str]]] = [(root, extras)]
    while todo:
        name, extras = todo.pop()
        dist = md.distribution(name)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(
                req.marker.evaluate({**MARKERS, "extra": e}) for e in (extras or {""})
            ):
                continue
            key = canonical(req.name)
            if key in seen:
                continue
            try:
                seen[key] = md.version(req.name)
            except md.PackageNotFoundError:  # a marker-selected package not installed here (another platform)
                continue
            todo.append((req.name, frozenset(req.extras)))
    seen.pop(canonical(root), None)
    return seen


def download(dest: Path) -> int:
    wanted = {name: v for name, v in closure().items() if name not in ON_IMAGE}
    dest.mkdir(exist_ok=True)
    args = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
            "--implementation", "cp", "-d", str(dest)]  # fmt: skip
    for p in PLATFORMS:
        args += ["--platform", p]
    specs = [f"{name}=={v}" for name, v in sorted(wanted.items())]
    print(f"downloading {len(specs)} wheels: {' '.join(specs)}", flush=True)
    return subprocess.run(args + specs).returncode


def wheel_distribution(path: Path) -> str:
    """The distribution a wheel file installs (its name's first field)."""
    return canonical(path.name.split("-")[0])


def missing(dest: Path) -> list[Path]:
    """Carried wheels whose distribution is not installed (one per distribution, the newest name)."""
    installed = {canonical(d.metadata["Name"] or "") for d in md.distributions()}
    chosen: dict[str, Path] = {}
    for w in sorted(dest.glob("*.whl")):
        name = wheel_distribution(w)
        if name not in installed:
            chosen[name] = w
    return sorted(chosen.values())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["download", "missing"])
    p.add_argument("--dest", type=Path, default=Path(".whl"))
    args = p.parse_args(argv)
    if args.action == "download":
        return download(args.dest)
    for w in missing(args.dest):
        print(w)
    return 0


if __name__ == "__main__":
    sys.exit(main())

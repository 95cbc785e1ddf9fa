"""bench/gpu_wheels.py: the wheels carried to the GPU machine are lindyn's run-time requirements, and only
those whose package is missing there get installed."""

from __future__ import annotations

from pathlib import Path

from bench.gpu_wheels import ON_IMAGE, closure, missing, wheel_distribution


def test_closure_holds_the_service_requirements_at_their_installed_versions() -> None:
    import importlib.metadata as md

    wanted = closure()
    for name in ("pydantic", "pydantic-core", "pydantic-settings", "fastapi", "starlette", "uvicorn", "celery",
                 "kombu", "billiard", "sqlalchemy", "alembic", "mako", "numpy"):  # fmt: skip
        assert name in wanted, name
        assert wanted[name] == md.version(name)
    assert "lindyn" not in wanted and "pytest" not in wanted  # the dev extra is not carried
    assert "numpy" in ON_IMAGE and "fastapi" not in ON_IMAGE


def test_missing_lists_only_wheels_of_packages_not_installed(tmp_path: Path) -> None:
    for name in ("pydantic-2.14.4-py3-none-any.whl", "pydantic_core-2.50.5-cp312-cp312-manylinux_2_17_x86_64.whl",
                 "surely_not_installed_pkg-1.0-py3-none-any.whl", "notes.txt"):  # fmt: skip
        (tmp_path / name).write_text("")
    assert wheel_distribution(Path("pydantic_core-2.50.5-cp312-cp312-manylinux_2_17_x86_64.whl")) == "pydantic-core"
    assert [p.name for p in missing(tmp_path)] == ["surely_not_installed_pkg-1.0-py3-none-any.whl"]

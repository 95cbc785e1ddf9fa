"""Bridges from the client to the lab's own tools: xarray datasets (xarray.py), MLflow (mlflow.py). Their
packages are optional extras of lindyn, imported only when a bridge is used."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


def require(module: str, extra: str, what: str) -> ModuleType:
    """``module`` imported, or an ImportError saying which extra of lindyn brings it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ImportError(f"{what} needs the package {module!r}: pip install 'lindyn[{extra}]'") from exc


def metric_columns(trajectory: Any) -> list[str]:
    """The metrics of a trajectory table (a DataFrame): every column but run_id, dynamics and step."""
    return [c for c in trajectory.columns if c not in ("run_id", "dynamics", "step")]

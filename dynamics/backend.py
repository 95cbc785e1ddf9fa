"""Array backend: NumPy, or CuPy when asked for (or `auto` and a GPU is present).

CuPy is imported only when a request asks for it (``cupy``) or may use it (``auto``, and the package
is installed); a ``numpy`` request never imports it.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (e.g. ``cupy`` on a machine without CuPy or a GPU)."""


@dataclass(frozen=True)
class Backend:
    xp: ModuleType
    name: str  # "numpy" or "cupy"
    device: str  # "cpu" or the GPU's name

    def to_host(self, a: Any) -> np.ndarray:
        """A NumPy copy of an array of this backend (a device array's explicit ``.get()``: the only way a
        runner's array leaves the device)."""
        return np.asarray(a) if self.name == "numpy" else a.get()


_NUMPY = Backend(np, "numpy", "cpu")


def _cupy_backend() -> Backend | None:
    if importlib.util.find_spec("cupy") is None:
        return None
    try:
        cp = importlib.import_module("cupy")
        if cp.cuda.runtime.getDeviceCount() < 1:
            return None
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        name = props["name"]
        device = name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # no driver, no device
        return None
    return Backend(cp, "cupy", device)


def resolve_backend(name: str = "auto") -> Backend:
    """``numpy`` -> NumPy; ``cupy`` -> CuPy or BackendUnavailable; ``auto`` -> CuPy if a GPU is usable."""
    if name == "numpy":
        return _NUMPY
    if name not in ("auto", "cupy"):
        raise ValueError(f"unknown backend {name!r}")
    backend = _cupy_backend()
    if backend is not None:
        return backend
    if name == "cupy":
        raise BackendUnavailable("backend 'cupy' was asked for, but CuPy or a CUDA GPU is not available here")
    return _NUMPY

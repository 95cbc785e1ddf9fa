"""Backend resolution (dynamics/backend.py) on a machine without a GPU: ``numpy`` never looks for CuPy, ``cupy``
fails plainly, ``auto`` falls back; and the CuPy branch's decisions (no device, the device's name as bytes or
str, a driver error) with a stand-in for the ``cupy`` module (a unit test of this one piece: the real CuPy runs
in tests/dynamics/test_gpu.py on a GPU machine)."""

from __future__ import annotations

import importlib
import importlib.util
import types
from typing import Any

import numpy as np
import pytest

from dynamics import backend as backend_module
from dynamics.backend import Backend, BackendUnavailable, resolve_backend


def _fake_cupy(count: int | Exception, name: Any = b"Fake GPU", device_id: int = 3) -> types.ModuleType:
    """A module with the parts of cupy.cuda the backend reads; records the device asked for."""
    cp = types.ModuleType("cupy")
    asked: list[int] = []

    def get_device_count() -> int:
        if isinstance(count, Exception):
            raise count
        return count

    def get_device_properties(i: int) -> dict[str, Any]:
        asked.append(i)
        return {"name": name}

    runtime = types.SimpleNamespace(getDeviceCount=get_device_count, getDeviceProperties=get_device_properties)
    device = types.SimpleNamespace(id=device_id)
    cp.cuda = types.SimpleNamespace(runtime=runtime, Device=lambda: device)  # type: ignore[attr-defined]
    cp.asked = asked  # type: ignore[attr-defined]
    return cp


@pytest.fixture
def cupy_present(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Install a stand-in cupy: returns a setter taking the module."""
    real_find_spec, real_import = importlib.util.find_spec, importlib.import_module
    holder: dict[str, types.ModuleType] = {}

    def find_spec(name: str, *a: Any, **kw: Any) -> Any:
        return object() if name == "cupy" else real_find_spec(name, *a, **kw)

    def import_module(name: str, *a: Any, **kw: Any) -> Any:
        return holder["cupy"] if name == "cupy" else real_import(name, *a, **kw)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(importlib, "import_module", import_module)
    return lambda module: holder.__setitem__("cupy", module)


@pytest.fixture
def cupy_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *a: Any, **kw: Any) -> Any:
        return None if name == "cupy" else real_find_spec(name, *a, **kw)

    def import_module(name: str, *a: Any, **kw: Any) -> Any:
        raise AssertionError(f"{name} imported although find_spec said it is absent")

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(importlib, "import_module", import_module)


def test_numpy_is_numpy_on_the_cpu_and_never_looks_for_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    def no(*a: Any, **kw: Any) -> Any:
        raise AssertionError("a numpy request looked for CuPy")

    monkeypatch.setattr(importlib.util, "find_spec", no)
    be = resolve_backend("numpy")
    assert (be.xp, be.name, be.device) == (np, "numpy", "cpu")


def test_unknown_backend_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown backend 'torch'"):
        resolve_backend("torch")


def test_without_cupy_auto_is_numpy_and_cupy_is_unavailable(cupy_absent: None) -> None:
    assert resolve_backend("auto").name == "numpy"
    assert resolve_backend().name == "numpy"  # auto is the default
    with pytest.raises(BackendUnavailable, match="'cupy' was asked for"):
        resolve_backend("cupy")


@pytest.mark.parametrize(("name", "device"), [(b"Fake GPU", "Fake GPU"), ("Other GPU", "Other GPU")])
@pytest.mark.parametrize("asked", ["auto", "cupy"])
def test_a_usable_device_gives_cupy_named_after_it(
    cupy_present: Any, name: Any, device: str, asked: str
) -> None:
    cp = _fake_cupy(1, name)
    cupy_present(cp)
    be = resolve_backend(asked)
    assert (be.xp, be.name, be.device) == (cp, "cupy", device)
    assert cp.asked == [3]  # the properties of the current device


@pytest.mark.parametrize("count", [0, RuntimeError("no CUDA driver")])
def test_no_device_or_a_driver_error_falls_back_or_fails(cupy_present: Any, count: int | Exception) -> None:
    cupy_present(_fake_cupy(count))
    assert resolve_backend("auto").name == "numpy"
    with pytest.raises(BackendUnavailable):
        resolve_backend("cupy")


def test_to_host_copies_numpy_and_calls_get_on_a_device_array() -> None:
    a = np.arange(3.0)
    host = resolve_backend("numpy").to_host(a)
    assert isinstance(host, np.ndarray) and host.tolist() == [0.0, 1.0, 2.0]

    class DeviceArray:
        def get(self) -> np.ndarray:
            return np.array([7.0])

    gpu = Backend(np, "cupy", "a GPU")
    assert gpu.to_host(DeviceArray()).tolist() == [7.0]
    assert backend_module._NUMPY.to_host([1, 2]).tolist() == [1, 2]  # array-likes become arrays

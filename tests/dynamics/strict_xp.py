"""A CuPy-like array module over NumPy whose arrays refuse to become NumPy arrays implicitly, and that counts
every device-to-host transfer: the CPU stand-in for CuPy in tests/dynamics/test_host_transfers.py.

What it copies from CuPy (the behaviour that makes host round trips bugs only a GPU shows):

- ``np.asarray(a)`` / ``np.array(a)`` of a device array raises TypeError (CuPy: "Implicit conversion to a
  NumPy array is not allowed"), and so does a NumPy function or ufunc given one (stricter than CuPy,
  which dispatches some of them back to itself: in the runner every array call must go through ``xp``);
- a device array mixed with a NumPy array in arithmetic, ``matmul``, ``where``... raises TypeError;
- reductions return 0-d device arrays, not Python or NumPy scalars;
- explicit transfers ``a.get()``, ``asnumpy(a)``, ``a.item()``, ``a.tolist()`` and the implicit ones
  ``float(a)``, ``int(a)``, ``bool(a)``, ``operator.index(a)`` (each a synchronising copy of a scalar on
  CuPy) work and are counted in :data:`transfers` as device-to-host;
- ``asarray(host)`` and NumPy integer or boolean index arrays (which CuPy uploads) work and are counted
  as host-to-device.

Numerics are NumPy's, operation for operation (under ``np.errstate(all="ignore")``, as CuPy never warns),
so a run on this module gives bit-identical results to a run on NumPy. It has no ``errstate`` (CuPy has
none), so ``dynamics.metrics.ignore_fp`` takes its no-op branch as on CuPy.
"""

from __future__ import annotations

import operator
import traceback
import types
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_IMPLICIT = (
    "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct a NumPy array "
    "explicitly."
)


@dataclass
class Transfers:
    """Counts of transfers; ``where`` maps each device-to-host transfer's caller (file:line) to its count."""

    d2h: int = 0
    h2d: int = 0
    where: Counter[str] = field(default_factory=Counter)

    def reset(self) -> None:
        self.d2h = self.h2d = 0
        self.where.clear()

    def count_d2h(self) -> None:
        self.d2h += 1
        self.where[_caller()] += 1


transfers = Transfers()


def _caller() -> str:
    """The first frame outside this module (where the transfer was asked for)."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if frame.filename != __file__:
            return f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}"
    return "?"


class ndarray:  # noqa: N801 - named as cupy.ndarray
    """A device array: a NumPy array that cannot leave the 'device' except through a counted transfer."""

    __slots__ = ("_a",)
    __array_priority__ = 1000

    def __init__(self, a: np.ndarray) -> None:
        self._a = a

    # ---- refused: implicit conversion and NumPy functions ------------------------------------------
    def __array__(self, *args: Any, **kw: Any) -> np.ndarray:
        raise TypeError(_IMPLICIT)

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kw: Any) -> Any:
        raise TypeError(f"NumPy ufunc {ufunc.__name__} called on a device array (use the array module xp)")

    def __array_function__(self, func: Any, types_: Any, args: Any, kw: Any) -> Any:
        raise TypeError(f"NumPy function {func.__name__} called on a device array (use the array module xp)")

    # ---- counted device-to-host transfers --------------------------------------------------------
    def get(self) -> np.ndarray:
        transfers.count_d2h()
        return self._a.copy()

    def item(self) -> Any:
        transfers.count_d2h()
        return self._a.item()

    def tolist(self) -> Any:
        transfers.count_d2h()
        return self._a.tolist()

    def __float__(self) -> float:
        transfers.count_d2h()
        return float(self._a)

    def __int__(self) -> int:
        transfers.count_d2h()
        return int(self._a)

    def __bool__(self) -> bool:
        transfers.count_d2h()
        return bool(self._a)

    def __index__(self) -> int:
        transfers.count_d2h()
        return operator.index(self._a)

    # ---- attributes and methods (results stay on the device) -----------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    T = property(lambda self: _wrap(self._a.T))

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Any:
        return (_wrap(x) for x in self._a)

    def __repr__(self) -> str:
        return f"strict_xp.ndarray(shape={self._a.shape}, dtype={self._a.dtype})"

    def __getattr__(self, name: str) -> Any:  # copy, astype, reshape, sum, ...: run on the device
        if name.startswith("__"):  # no __array_interface__, __array_struct__, __dlpack__, ...
            raise AttributeError(name)
        attr = getattr(self._a, name)
        if callable(attr):
            return _device_call(attr)
        return _wrap(attr)

    def __getitem__(self, key: Any) -> ndarray:
        return _wrap(self._a[_index(key)])

    def __setitem__(self, key: Any, value: Any) -> None:
        self._a[_index(key)] = _unwrap(value)

    def __hash__(self) -> int:
        raise TypeError("unhashable type: 'strict_xp.ndarray'")


def _binary(name: str) -> Any:
    def op(self: ndarray, other: Any) -> Any:
        with np.errstate(all="ignore"):
            return _wrap(getattr(operator, name)(self._a, _unwrap(other)))

    return op


def _rbinary(name: str) -> Any:
    def op(self: ndarray, other: Any) -> Any:
        with np.errstate(all="ignore"):
            return _wrap(getattr(operator, name)(_unwrap(other), self._a))

    return op


for _name in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor"):
    setattr(ndarray, f"__{_name}__", _binary(_name))
    setattr(ndarray, f"__r{_name}__", _rbinary(_name))
for _name in ("lt", "le", "gt", "ge", "eq", "ne"):
    setattr(ndarray, f"__{_name}__", _binary(_name))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", (lambda f: lambda self: _wrap(f(self._a)))(getattr(operator, _name)))


def _wrap(r: Any) -> Any:
    """NumPy results become device arrays (scalars as 0-d arrays, as CuPy's reductions return)."""
    if isinstance(r, np.ndarray):
        return ndarray(r)
    if isinstance(r, np.generic):
        return ndarray(np.asarray(r))
    if isinstance(r, tuple):
        return tuple(_wrap(x) for x in r)
    if isinstance(r, list):
        return [_wrap(x) for x in r]
    return r


def _unwrap(x: Any) -> Any:
    """Device arrays to their NumPy array; a NumPy array here (an operand) is refused, as CuPy does."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}: a NumPy array mixed with device arrays")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _index(key: Any) -> Any:
    """An index: device arrays unwrapped; NumPy integer/boolean arrays accepted (an upload, counted)."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, ndarray):
        return key._a
    if isinstance(key, np.ndarray):
        transfers.h2d += 1
        return key
    return key


def _device_call(fn: Any) -> Any:
    def call(*args: Any, **kw: Any) -> Any:
        with np.errstate(all="ignore"):
            return _wrap(fn(*_unwrap(args), **_unwrap(kw)))

    call.__name__ = getattr(fn, "__name__", "call")
    return call


# ---- the module's functions -----------------------------------------------------------------------------


def asarray(a: Any, dtype: Any = None) -> ndarray:
    """Device array of ``a``: a copy of host data (counted), or ``a`` itself (cast if ``dtype``)."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else ndarray(a._a.astype(dtype))
    transfers.h2d += 1
    return ndarray(np.array(a, dtype=dtype))


array = asarray


def asnumpy(a: Any) -> np.ndarray:
    if isinstance(a, ndarray):
        return a.get()
    return np.asarray(a)


def _is_function(obj: Any) -> bool:
    return isinstance(obj, (np.ufunc, types.FunctionType, types.BuiltinFunctionType)) or type(obj).__name__ in (
        "_ArrayFunctionDispatcher",
        "ArrayFunctionDispatcher",
    )


class _Namespace(types.ModuleType):
    """A module whose missing attributes are NumPy's, functions run on the device."""

    def __init__(self, name: str, source: Any) -> None:
        super().__init__(name)
        self._source = source

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "errstate":  # CuPy has none
            raise AttributeError(name)
        obj = getattr(self._source, name)
        return _device_call(obj) if _is_function(obj) else obj  # dtypes, finfo, nan, ...


linalg = _Namespace(f"{__name__}.linalg", np.linalg)


def __getattr__(name: str) -> Any:  # noqa: N807 - the module-level fallback
    if name.startswith("__") or name == "errstate":
        raise AttributeError(name)
    obj = getattr(np, name)
    return _device_call(obj) if _is_function(obj) else obj


__all__ = ["asarray", "asnumpy", "linalg", "ndarray", "transfers"]

"""Timing helpers for the benchmarks: medians over repeats, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any


def median_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine() -> str:
    import numpy as np

    cfg = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
    blas = (cfg or {}).get("Build Dependencies", {}).get("blas", {}).get("name", "?")
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__} ({blas})"

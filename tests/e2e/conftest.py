"""Real processes for the end-to-end tests: started on free ports, every wait bounded, always cleaned up.

A server listens on a port the system gives it (uvicorn on port 0 logs the port it got): no port is chosen
first and bound later, which another process could take in between."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

LINDYN = [sys.executable, "-m", "lindyn.cli"]


def free_port() -> int:
    """A port free a moment ago, for servers that cannot bind port 0 and say which they got (redis-server);
    another process may take it before the server binds it: see tests/own_redis.py, which tries again."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def refused_port() -> Iterator[int]:
    """A port where connections are refused while the block runs: bound by a socket that never listens, so no
    other process can take it meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


_LISTENING = re.compile(r"Uvicorn running on https?://[^\s]+:(\d+) ")


def listening_port(processes: Processes, name: str, timeout: float = 90) -> int:
    """The port that the uvicorn of process ``name``, started with port 0, got from the system (from its log)."""

    def port() -> int | None:
        processes.assert_running()
        found = _LISTENING.search(processes.log(name))
        return int(found.group(1)) if found else None

    return int(wait_for(port, timeout, f"{name} to listen"))


def start_serve(processes: Processes, env: dict[str, str], *args: str, name: str = "serve") -> tuple[Api, Any]:
    """``lindyn serve --port 0 ARGS``, waited for until /health answers 200; (its Api, its process)."""
    proc = processes.start(name, [*LINDYN, "serve", "--port", "0", *args], env)
    api = Api(f"http://127.0.0.1:{listening_port(processes, name)}", processes)
    api.wait_healthy()
    return api, proc


#: one BLAS thread per process started here. These tests run beside other processes on a few cores, where a
#: threaded eigendecomposition waits for cores that are busy: measured under a load of 18 on 2 cores, a
#: self-consistent step at d = 60 took 135 ms with OpenBLAS's default threads and 6.4 ms with one, so a
#: run of seconds took minutes and outlived the tests' waits (the "run stayed running" failures)
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def clean_env(**overrides: str) -> dict[str, str]:
    """This environment without any LINDYN_ setting, with one BLAS thread per process, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LINDYN_")}
    env.update(ONE_BLAS_THREAD)
    env.update(overrides)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


class Processes:
    """Processes started by one test, each in its own process group, stopped (group and all) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.started.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def assert_running(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode}:\n{self.log(name)[-4000:]}")

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
        """SIGTERM to the process group (graceful), then SIGKILL."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
        except ProcessLookupError:
            pass
        proc.wait(timeout)

    def stop_all(self) -> None:
        for _, proc in reversed(self.started):
            self.stop(proc)


@pytest.fixture
def processes(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            for name, _ in procs.started:
                print(f"----- {name} log -----\n{procs.log(name)[-6000:]}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


class Api:
    """A small HTTP helper around a running API."""

    def __init__(self, base: str, procs: Processes) -> None:
        self.http = httpx.Client(base_url=base, timeout=10)
        self.procs = procs

    def wait_healthy(self, timeout: float = 90) -> None:
        def healthy() -> bool:
            self.procs.assert_running()
            return self.http.get("/health").status_code == 200

        wait_for(healthy, timeout, "GET /health = 200")

    def wait_finished(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            self.procs.assert_running()
            run = self.http.get(f"/v1/runs/{run_id}").json()
            return run if run["status"] not in ("queued", "running") else None

        return wait_for(finished, timeout, f"run {run_id} to finish", interval=0.25)


def start_api(processes: Processes, env: dict[str, str]) -> Api:
    """uvicorn serving service.main:app on a port the system gives it, waited for until /health answers 200."""
    processes.start(
        "api", [sys.executable, "-m", "uvicorn", "service.main:app", "--host", "127.0.0.1", "--port", "0"], env
    )
    api = Api(f"http://127.0.0.1:{listening_port(processes, 'api')}", processes)
    api.wait_healthy()
    return api


def start_worker(
    processes: Processes, name: str, env: dict[str, str], concurrency: int = 1, queues: str = "cpu"
) -> subprocess.Popen[bytes]:
    """``lindyn worker`` on ``queues``, waited for until it says it is ready."""
    proc = processes.start(name, [*LINDYN, "worker", "--queues", queues, "--concurrency", str(concurrency)], env)
    wait_for(lambda: "ready" in processes.log(name), 60, f"{name} to be ready")
    return proc

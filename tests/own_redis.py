"""A redis-server of a test's own, on a free port, that the test may kill and start again (the machine's
Redis, shared with other test runs, is never flushed, stopped or restarted)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.e2e.conftest import free_port


class RedisServer:
    """A redis-server of this test's own, persisting every write (appendonly, as in docker-compose.yml)."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and wait until it answers. redis-server cannot bind port 0, so its port was picked
        free beforehand: if another process took it meanwhile, the first start tries another one (a restart
        keeps its port, which the services were given)."""
        first = self.proc is None
        for _ in range(5):
            if self._start_once():
                return
            if not first or "Address already in use" not in (self.folder / "redis.log").read_text(errors="replace"):
                break
            self.port = free_port()
            self.url = f"redis://127.0.0.1:{self.port}/0"
        pytest.fail(f"redis-server did not start on port {self.port}:\n{(self.folder / 'redis.log').read_text()}")

    def _start_once(self) -> bool:
        import redis

        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - closed below, the process keeps its copy
        self.proc = proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.folder)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline and proc.poll() is None:
                try:  # this server, not another one that had the port already
                    if client.info("server")["process_id"] == proc.pid:
                        return True
                except redis.RedisError:
                    pass
                time.sleep(0.1)
            return False
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server binary", FileNotFoundError("redis-server"))
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(folder)
    server.start()
    try:
        yield server
    finally:
        server.kill()

"""The API while PostgreSQL terminates its backends (pg_terminate_backend, over and over, as a server restart
or a network drop would): no request is a 500, a read is retried on a fresh connection, what cannot be
answered is a 503 with Retry-After, and no finished response is dropped (no "Exception in ASGI
application")."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import LINDYN, Processes, clean_env, start_api

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

BODY = {"d": 10, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 20, "dynamics": ["gd"]}


class BackendKiller:
    """A thread terminating every backend of one database every ``interval_s``."""

    def __init__(self, database_url: str, interval_s: float) -> None:
        self.db = make_url(database_url).database
        self.admin = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
        self.interval_s = interval_s
        self.stop = threading.Event()
        self.terminated = 0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        with self.admin.connect() as conn:
            while not self.stop.wait(self.interval_s):
                self.terminated += int(conn.execute(
                    text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                         "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": self.db},
                ).scalar() or 0)

    def __enter__(self) -> BackendKiller:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.admin.dispose()


def test_reads_and_writes_while_backends_are_terminated(
    postgres_url: str, processes: Processes, tmp_path: Path
) -> None:
    env = clean_env(LINDYN_DATA_DIR=str(tmp_path / "data"), LINDYN_DATABASE_URL=postgres_url)
    done = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for sub in ("queue", "control", "processed"):  # the filesystem broker's folders (a worker would make them)
        (tmp_path / "data" / "broker" / sub).mkdir(parents=True, exist_ok=True)
    api = start_api(processes, env)
    ids = [api.http.post("/v1/runs", json={**BODY, "seed": i}).json()["id"] for i in range(3)]
    codes: Counter[int] = Counter()
    bad: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(base_url=str(api.http.base_url), timeout=30) as http:
            deadline = time.monotonic() + 8
            i = 0
            while time.monotonic() < deadline:
                i += 1
                if i % 5 == 0:  # a write now and then: a new run each time
                    r = http.post("/v1/runs", json={**BODY, "seed": 1000 * (k + 1) + i})
                else:
                    r = http.get(f"/v1/runs/{ids[i % 3]}" if i % 2 else "/v1/runs?limit=5")
                with lock:
                    codes[r.status_code] += 1
                    if r.status_code >= 500 and (r.status_code != 503 or "retry-after" not in r.headers):
                        bad.append(f"{r.status_code} {r.request.method} {r.request.url.path}: {r.text[:200]}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    with BackendKiller(postgres_url, 0.2) as killer:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    print(f"requests: {sum(codes.values())}, answers: {dict(codes)}, backends terminated: {killer.terminated}")
    assert killer.terminated > 10
    assert not bad, (bad[:5], codes)
    assert set(codes) <= {200, 202, 503}, codes
    assert codes[200] + codes[202] > codes[503], codes  # most are answered: a read is retried
    assert "Exception in ASGI application" not in processes.log("api")
    assert api.http.get(f"/v1/runs/{ids[0]}").status_code == 200  # and the API is fine afterwards

"""``lindyn serve`` (embedded: SQLite, filesystem broker, its own worker) killed with SIGKILL, API and worker at
once, while runs are being submitted (issue #13: two runs stayed queued for ever). After a restart on the same
data directory every run stored reaches a terminal state (the reaper sends again the runs whose message was
lost), none is stored twice, and submitting the same requests again makes no new run for any stored one."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from models import Run
from tests.e2e.conftest import Processes, clean_env, start_serve, wait_for

pytestmark = pytest.mark.e2e

SENDERS = 4
#: the answers after which serve is killed: runs are still arriving, and some sent but not yet run
KILL_AFTER = 24


def request_of(i: int) -> dict[str, Any]:
    return {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 400, "seed": i, "dynamics": ["gd"]}


def test_serve_killed_during_run_creation_strands_nothing(processes: Processes, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env(LINDYN_DATA_DIR=str(data), LINDYN_STALE_AFTER_S="3", LINDYN_REAPER_INTERVAL_S="1",
                    LINDYN_HEARTBEAT_INTERVAL_S="0.5", LINDYN_WORKER_PROCESSES="1")
    api, serve = start_serve(processes, env)
    base = str(api.http.base_url)
    accepted: dict[int, str] = {}  # seed -> run id answered 202/200
    sent: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()
    counter = iter(range(10**6))

    def sender() -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            while not stop.is_set():
                with lock:
                    i = next(counter)
                    sent.add(i)
                try:
                    r = http.post("/v1/runs", json=request_of(i))
                except httpx.HTTPError:
                    return  # serve was killed under this request
                if r.status_code in (200, 202):
                    with lock:
                        accepted[i] = r.json()["id"]
                        if len(accepted) >= KILL_AFTER:
                            stop.set()

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for t in threads:
        t.start()
    assert stop.wait(120), "the runs were not accepted"
    os.killpg(serve.pid, signal.SIGKILL)  # API, worker and its pool at once; requests are in flight
    for t in threads:
        t.join(60)
    serve.wait(30)
    processes.started = [(name, p) for name, p in processes.started if p is not serve]  # killed on purpose

    engine = create_engine(f"sqlite:///{data / 'lindyn.db'}")
    try:
        with engine.connect() as conn:
            stored_before = conn.scalar(select(func.count()).select_from(Run))
            unfinished = conn.scalar(select(func.count()).select_from(Run).where(Run.status.in_(["queued", "running"])))
        assert stored_before is not None and stored_before >= len(accepted)
        assert unfinished, "every run had finished before the kill: nothing was left to strand"

        api, _ = start_serve(processes, env, name="serve-again")

        def settled() -> bool:
            active = api.http.get("/v1/runs", params={"status": ["queued", "running"]}).json()["total"]
            return active == 0

        wait_for(settled, 240, "every stored run to finish after the restart", interval=0.5)
        with engine.connect() as conn:
            rows = conn.execute(select(Run.id, Run.cache_key, Run.status, Run.attempts)).all()
        assert len(rows) == stored_before  # nothing lost, nothing added by the restart
        assert {r.status for r in rows} == {"succeeded"}, [(r.id, r.status) for r in rows if r.status != "succeeded"]
        assert len({r.cache_key for r in rows}) == len(rows)  # no request stored twice
        stored_ids = {str(r.id) for r in rows}
        assert set(accepted.values()) <= stored_ids  # every run answered 202 was stored and ran

        # the same requests again: a stored one is answered with its run, one never stored makes its run once
        for i in sorted(sent):
            r = api.http.post("/v1/runs", json=request_of(i))
            assert r.status_code in (200, 202), r.text
            if i in accepted:
                assert r.status_code == 200 and r.json()["id"] == accepted[i]
        with engine.connect() as conn:
            keys = conn.execute(select(Run.cache_key)).scalars().all()
        assert len(keys) == len(set(keys)) == len(sent)
    finally:
        engine.dispose()

"""Faults with real processes: a worker SIGKILLed mid-run (Redis redelivery; embedded reaper), Redis restarted
during a batch of runs, PostgreSQL backends terminated during a run. Each test owns its Redis server (a
redis-server on a free port, killed and restarted here) and its PostgreSQL database (only that database's
backends are terminated); the machine's servers are never touched.

A run that raises (failed, with its message) and a divergent run (diverged, with its step) are covered by
tests/workers/test_tasks.py and tests/e2e/test_runs_end_to_end.py."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from models import Run, RunSummary, TrajectoryPoint
from tests.conftest import POSTGRES_URL
from tests.own_redis import RedisServer, own_redis  # noqa: F401 - a fixture
from tests.e2e.conftest import LINDYN, Api, Processes, clean_env, start_api, start_worker, wait_for

pytestmark = pytest.mark.e2e

#: a run of several seconds (progress about every 1% of its steps), 17 recorded steps per dynamics
LONG = {"d": 60, "rank": 3, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 4000, "record_every": 250,
        "spectrum_every": 0, "dynamics": ["gd", "self_consistent"]}
#: short enough for a test, long enough that a loaded machine does not make a live run look dead
FAST = {"heartbeat": "0.5", "stale": "4", "visibility": "4"}


def service_env(tmp_path: Path, database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    settings = {
        "LINDYN_DATABASE_URL": database_url,
        "LINDYN_BROKER_URL": broker_url,
        "LINDYN_DATA_DIR": str(tmp_path / "data"),
        "LINDYN_PROGRESS_INTERVAL_S": "0",
        "LINDYN_HEARTBEAT_INTERVAL_S": FAST["heartbeat"],
        "LINDYN_STALE_AFTER_S": FAST["stale"],
        "LINDYN_VISIBILITY_TIMEOUT_S": FAST["visibility"],
    }
    return clean_env(**{**settings, **extra})


def migrate(env: dict[str, str]) -> None:
    done = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def sigkill(processes: Processes, proc: Any) -> None:
    """SIGKILL the worker and its pool processes at once: nothing acknowledges, nothing cleans up."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)
    processes.started = [(n, p) for n, p in processes.started if p is not proc]


def get_run(api: Api, run_id: str) -> dict[str, Any] | None:
    """The run, or None when the API could not answer (it may be going through the same fault)."""
    try:
        r = api.http.get(f"/v1/runs/{run_id}")
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def wait_terminal(api: Api, run_id: str, timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        api.procs.assert_running()
        run = get_run(api, run_id)
        return run if run is not None and run["status"] not in ("queued", "running") else None

    return wait_for(done, timeout, f"run {run_id} to finish", interval=0.25)


def assert_stored_once(database_url: str, run_id: str, request: dict[str, Any]) -> None:
    """Every recorded step of every dynamics, once (rows are keyed by run, dynamics and step, and the
    metrics are on the recorded ones); one summary per dynamics."""
    import uuid

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rid = uuid.UUID(run_id)
            steps = conn.execute(
                select(TrajectoryPoint.dynamics, TrajectoryPoint.step)
                .where(TrajectoryPoint.run_id == rid, TrajectoryPoint.recorded)
            ).all()
            n_summaries = conn.scalar(select(func.count()).select_from(RunSummary).where(RunSummary.run_id == rid))
    finally:
        engine.dispose()
    expected = {(name, s) for name in request["dynamics"]
                for s in range(0, request["steps"] + 1, request["record_every"])}
    assert len(steps) == len(set(steps)) == len(expected), (len(steps), len(expected))
    assert set(steps) == expected
    assert n_summaries == len(request["dynamics"])


def wait_running(api: Api, run_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: (r := get_run(api, run_id)) is not None and r["status"] == "running" and r["progress"]["step"] > 0
        and r, 60, f"run {run_id} to be running")


@pytest.mark.postgres
def test_worker_sigkilled_mid_run_redis_redelivers(
    postgres_url: str, own_redis: RedisServer, processes: Processes, tmp_path: Path
) -> None:
    """Redis: the killed worker's task stays unacknowledged and comes back after the visibility timeout (the
    reaper is off here, so this is Redis's redelivery alone); another worker runs it to the end."""
    # the visibility timeout is longer than the stale limit plus the time to the kill: the copy Redis delivers
    # again finds the dead worker's heartbeat stale and takes the run over (a copy of a live run is skipped)
    env = service_env(tmp_path, postgres_url, own_redis.url, LINDYN_REAPER_INTERVAL_S="0",
                      LINDYN_VISIBILITY_TIMEOUT_S="12")
    migrate(env)
    first = start_worker(processes, "worker-a", env)
    api = start_api(processes, env)
    rid = api.http.post("/v1/runs", json=LONG).json()["id"]
    wait_running(api, rid)
    sigkill(processes, first)
    assert get_run(api, rid)["status"] == "running"  # type: ignore[index]  # nobody knows yet (reaper off)
    start_worker(processes, "worker-b", env)
    run = wait_terminal(api, rid, 120)
    assert run["status"] == "succeeded" and run["attempts"] == 2 and run["error"] is None, run
    assert run["progress"]["step"] == LONG["steps"]
    assert_stored_once(postgres_url, rid, LONG)


def test_worker_sigkilled_mid_run_embedded_reaper(processes: Processes, tmp_path: Path) -> None:
    """Embedded mode: the filesystem broker removed the message when it was taken and never delivers it
    again; the next worker's reaper finds the run's heartbeat stale, queues it again and runs it."""
    data = tmp_path / "data"
    env = clean_env(
        LINDYN_DATA_DIR=str(data),
        LINDYN_PROGRESS_INTERVAL_S="0",
        LINDYN_HEARTBEAT_INTERVAL_S=FAST["heartbeat"],
        LINDYN_STALE_AFTER_S=FAST["stale"],
        LINDYN_REAPER_INTERVAL_S="1",
    )
    migrate(env)
    first = start_worker(processes, "worker-a", env)
    api = start_api(processes, env)
    rid = api.http.post("/v1/runs", json=LONG).json()["id"]
    wait_running(api, rid)
    sigkill(processes, first)
    assert not any((data / "broker" / "queue").iterdir())  # the message is gone with the worker
    start_worker(processes, "worker-b", env)
    run = wait_terminal(api, rid, 120)
    assert run["status"] == "succeeded" and run["attempts"] == 2 and run["error"] is None, run
    assert "queued again" in processes.log("worker-b")
    assert_stored_once(f"sqlite:///{data / 'lindyn.db'}", rid, LONG)


@pytest.mark.postgres
def test_redis_restarted_during_a_batch(
    postgres_url: str, own_redis: RedisServer, processes: Processes, tmp_path: Path
) -> None:
    """Redis killed and started again while runs are queued and running: the worker reconnects, the API
    retries its enqueue or answers a clean 503 (the run is failed, a resubmission runs it), and every
    accepted run finishes."""
    # a visibility timeout longer than these runs: Redis's redelivery is not what this test is about (a run
    # that outlives the timeout is delivered again while it runs, the copies replacing each other's result)
    env = service_env(tmp_path, postgres_url, own_redis.url, LINDYN_REAPER_INTERVAL_S="1",
                      LINDYN_VISIBILITY_TIMEOUT_S="300")
    migrate(env)
    start_worker(processes, "worker", env, concurrency=2)
    api = start_api(processes, env)
    base = {"d": 40, "rank": 3, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 1000, "record_every": 100,
            "spectrum_every": 0, "dynamics": ["gd", "self_consistent"]}
    bodies = [{**base, "seed": i} for i in range(10)]
    accepted: dict[int, str] = {}
    refused: list[int] = []

    def submit(i: int) -> None:
        r = api.http.post("/v1/runs", json=bodies[i])
        if r.status_code == 503:
            assert "job queue unreachable" in r.json()["detail"]
            refused.append(i)
        else:
            assert r.status_code == 202, r.text
            accepted[i] = r.json()["id"]

    for i in range(6):
        submit(i)
    wait_for(lambda: any((get_run(api, r) or {}).get("status") == "running" for r in accepted.values()), 30,
             "a run to be running")
    own_redis.kill()
    wait_for(lambda: api.http.get("/health").status_code == 503, 30, "the API to see the broker down")
    for i in range(6, 8):  # submitted while Redis is down
        submit(i)
    own_redis.start()  # same port, same append-only file: the queued messages are still there
    for i in range(8, 10):
        submit(i)
    for i in list(refused):  # what was refused is accepted once Redis is back
        refused.remove(i)
        submit(i)
    assert not refused and sorted(accepted) == list(range(10))
    for i, rid in accepted.items():
        run = wait_terminal(api, rid, 180)
        assert run["status"] == "succeeded" and run["error"] is None, (i, run)
        assert_stored_once(postgres_url, rid, bodies[i])


@pytest.mark.postgres
def test_postgres_connections_dropped_during_a_run(
    postgres_url: str, own_redis: RedisServer, processes: Processes, tmp_path: Path
) -> None:
    """Every connection to this test's database terminated over and over while a run runs and writes its
    progress, heartbeat and result: the worker reconnects (pool_pre_ping) and retries the transaction that
    failed; the run succeeds on its first attempt with its trajectory held once."""
    env = service_env(tmp_path, postgres_url, own_redis.url, LINDYN_REAPER_INTERVAL_S="0",
                      LINDYN_VISIBILITY_TIMEOUT_S="300")
    migrate(env)
    start_worker(processes, "worker", env)
    api = start_api(processes, env)
    request = {**LONG, "steps": 3000}
    rid = api.http.post("/v1/runs", json=request).json()["id"]
    wait_running(api, rid)

    dbname = make_url(postgres_url).database
    admin = create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")
    stop = threading.Event()
    terminated: list[int] = []

    writes_killed: list[int] = []
    spared: set[int] = set()

    def terminate() -> None:
        """Every 0.2 s, terminate every backend of this database. The result's transaction (the one writing
        trajectory_points) is killed twice at most, then spared: a transaction longer than the interval
        could otherwise never finish, which no retry policy survives."""
        with admin.connect() as conn:
            while not stop.is_set():
                rows = conn.execute(
                    text("SELECT pid, query FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"),
                    {"db": dbname},
                ).all()
                n = 0
                for pid, query in rows:
                    writing = "trajectory_points" in (query or "")
                    if pid in spared or (writing and len(writes_killed) >= 2):
                        spared.add(pid)
                        continue
                    if conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar():
                        n += 1
                        if writing:
                            writes_killed.append(pid)
                terminated.append(n)
                stop.wait(0.2)

    killer = threading.Thread(target=terminate, daemon=True)
    killer.start()
    try:
        run = wait_terminal(api, rid, 120)
    finally:
        stop.set()
        killer.join(10)
        admin.dispose()
    assert sum(terminated) > 0
    assert run["status"] == "succeeded" and run["attempts"] == 1 and run["error"] is None, (run, writes_killed)
    assert_stored_once(postgres_url, rid, request)
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:  # and no second copy of the run itself
            assert conn.scalar(select(func.count()).select_from(Run)) == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_queued_runs_whose_messages_were_lost_still_run(
    postgres_url: str, own_redis: RedisServer, processes: Processes, tmp_path: Path
) -> None:
    """Runs queued with no worker, then Redis flushed (as a restart without persistence would): their messages
    are gone. The worker's reaper finds them waiting past the stale limit with no worker busy, sends them
    again, and each runs once; a resubmission meanwhile is answered with the same run."""
    import redis

    env = service_env(tmp_path, postgres_url, own_redis.url, LINDYN_REAPER_INTERVAL_S="1",
                      LINDYN_VISIBILITY_TIMEOUT_S="300")
    migrate(env)
    api = start_api(processes, env)
    bodies = [{**LONG, "steps": 200, "record_every": 50, "seed": i} for i in range(4)]
    ids = [api.http.post("/v1/runs", json=b).json()["id"] for b in bodies]
    client = redis.Redis.from_url(own_redis.url)
    assert client.llen("cpu") == 4
    client.flushdb()
    client.close()
    again = api.http.post("/v1/runs", json=bodies[0])
    assert again.status_code == 200 and again.json()["id"] == ids[0]
    start_worker(processes, "worker", env)
    for rid, body in zip(ids, bodies, strict=True):
        run = wait_terminal(api, rid, 120)
        assert run["status"] == "succeeded" and run["attempts"] == 1 and run["error"] is None, run
        assert_stored_once(postgres_url, rid, body)
    assert processes.log("worker").count("its task sent again") == 4
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Run)) == 4
    finally:
        engine.dispose()

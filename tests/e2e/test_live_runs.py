"""Live runs end to end, with real processes, on PostgreSQL + Redis (uvicorn and a Celery worker) and on the
embedded default (`lindyn serve`): while a run runs, its trajectory answers the rows so far (marked partial)
and its event stream grows; the stream resumed with Last-Event-ID misses and doubles nothing; the client's
``Run.watch()`` and ``lindyn watch`` follow it to the end; a sweep's stream counts its runs to the end."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from dynamics import TRAJECTORY_COLUMNS
from lindyn.client import Client
from lindyn.client.transport import parse_events
from tests.e2e.conftest import LINDYN, Api, Processes, clean_env, start_api, start_serve, start_worker
from tests.own_redis import RedisServer, own_redis  # noqa: F401 - a fixture

pytestmark = pytest.mark.e2e

#: a run of a few seconds with one BLAS thread (about 5 s at d = 40 on an idle core): many progress writes
LONG = {"d": 40, "rank": 3, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 3000, "record_every": 10,
        "spectrum_every": 100, "dynamics": ["gd", "self_consistent"]}
LIVE_ENV = {"LINDYN_PROGRESS_INTERVAL_S": "0.2", "LINDYN_EVENTS_POLL_INTERVAL_S": "0.1"}


def _concat(parts: list[dict[str, list[Any]]]) -> dict[str, list[Any]]:
    """The rows of several rows events as one columnar table in the trajectory's order (each event holds
    every dynamics' new rows: dynamics first, then step)."""
    rows = [row for p in parts for row in zip(*(p[c] for c in TRAJECTORY_COLUMNS))]
    rows.sort(key=lambda r: (LONG["dynamics"].index(r[0]), r[1]))
    return {c: [r[i] for r in rows] for i, c in enumerate(TRAJECTORY_COLUMNS)}


def follow_a_run_live(api: Api, url: str, env: dict[str, str]) -> None:
    client = Client(url, retries=2)
    run = client.submit(LONG, force=True)
    cli = subprocess.Popen([*LINDYN, "watch", run.id, "--json", "--server", url], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # the raw stream, read until it brought rows while the run runs, then dropped
    seen: list[tuple[str | None, str, Any]] = []
    with api.http.stream("GET", f"/v1/runs/{run.id}/events", timeout=60) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for e in parse_events(response.iter_lines()):
            seen.append((e.id, e.event, e.data))
            if e.event == "rows":
                break
    status = [e[2] for e in seen if e[1] == "status"]
    assert status[-1]["status"] == "running", status[-1]
    first_rows = [e[2] for e in seen if e[1] == "rows"]
    # meanwhile the trajectory answers the rows stored so far, marked partial, at least those streamed
    partial = api.http.get(f"/v1/runs/{run.id}/trajectory")
    assert partial.status_code == 200
    if partial.headers["x-lindyn-status"] == "running":
        assert partial.headers["x-lindyn-partial"] == "true"
        assert json.loads(partial.headers["x-lindyn-progress"])["total"] == LONG["steps"]
    assert len(partial.json()["step"]) >= len(_concat(first_rows)["step"]) > 0

    # resumed after the last event seen: the rest, to the end
    last_id = seen[-1][0]
    assert last_id is not None
    with api.http.stream("GET", f"/v1/runs/{run.id}/events", headers={"Last-Event-ID": last_id},
                         timeout=120) as response:
        rest = [(e.id, e.event, e.data) for e in parse_events(response.iter_lines())]
    assert rest[-1][1] == "end" and rest[-1][2] == {"status": "succeeded"}
    assert not [e for e in rest if e[1] == "reset"]
    ids = [int(e[0]) for e in seen + rest if e[0] is not None]
    assert ids == sorted(ids)  # monotonic
    rows = _concat(first_rows + [e[2] for e in rest if e[1] == "rows"])
    final = api.http.get(f"/v1/runs/{run.id}/trajectory")
    assert final.headers["x-lindyn-partial"] == "false"
    assert rows == final.json()  # every row once, none missed

    # the client and the CLI followed it too: several rows events while it ran, the end last
    cli_out, cli_err = cli.communicate(timeout=120)
    assert cli.returncode == 0, cli_err
    cli_events = [json.loads(line) for line in cli_out.splitlines()]
    assert cli_events[-1]["event"] == "end" and cli_events[-1]["data"] == {"status": "succeeded"}
    assert _concat([e["data"] for e in cli_events if e["event"] == "rows"]) == final.json()
    again = [e for e in client.run(run.id).watch()]  # a finished run: its status, all its rows, the end
    assert [e.event for e in again] == ["status", "rows", "end"]
    assert _concat([again[1].data]) == final.json()
    human = subprocess.run([*LINDYN, "watch", run.id, "--server", url], env={**env, "COLUMNS": "200"},
                           capture_output=True, text=True, timeout=120)
    assert human.returncode == 0 and "succeeded" in human.stdout and "test error" in human.stdout, human
    client.close()


def follow_a_sweep(url: str) -> None:
    client = Client(url, retries=2)
    sweep = client.sweep({**LONG, "steps": 200}, {"seed": {"values": [0, 1, 2]}}, chunk_size=1)
    events = list(sweep.watch())
    assert events[-1].event == "end" and events[-1].data == {"status": "finished"}
    finished = [e.data["progress"]["finished"] for e in events if e.event == "status"]
    assert finished == sorted(finished) and finished[-1] == 3
    assert sweep.status == "finished" and sweep.counts["succeeded"] == 3  # updated by the status events
    client.close()


@pytest.mark.postgres
@pytest.mark.redis
def test_live_on_postgres_and_redis(postgres_url: str, own_redis: RedisServer, processes: Processes,
                                    tmp_path: Path) -> None:
    env = clean_env(LINDYN_DATABASE_URL=postgres_url, LINDYN_BROKER_URL=own_redis.url,
                    LINDYN_DATA_DIR=str(tmp_path / "data"), **LIVE_ENV)
    migrate = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stderr
    start_worker(processes, "worker", env, concurrency=1)
    api = start_api(processes, env)
    url = str(api.http.base_url).rstrip("/")
    follow_a_run_live(api, url, env)
    follow_a_sweep(url)


def test_live_on_embedded_serve(processes: Processes, tmp_path: Path) -> None:
    env = clean_env(LINDYN_DATA_DIR=str(tmp_path / "data"), **LIVE_ENV)
    api, _ = start_serve(processes, env)
    url = str(api.http.base_url).rstrip("/")
    follow_a_run_live(api, url, env)
    follow_a_sweep(url)
    unknown = httpx.get(f"{url}/v1/runs/00000000-0000-0000-0000-000000000000/events", timeout=10)
    assert unknown.status_code == 404

"""One request, one run: identical submissions sent at once to a real API process make one run, on PostgreSQL
and on the embedded default (SQLite). The database enforces it (a unique index on the cache key of reusable
runs); the losers of the race are answered 200 with the winner."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from models import Run
from tests.e2e.conftest import LINDYN, Processes, clean_env, start_api

pytestmark = pytest.mark.e2e

BODY = {"d": 10, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 20, "dynamics": ["gd"]}
SUBMISSIONS = 30


def submit_at_once(base_url: str, body: dict[str, object], n: int) -> list[httpx.Response]:
    """``n`` identical POSTs, each from its own thread and connection, released together by a barrier."""
    barrier = threading.Barrier(n)
    answers: list[httpx.Response | BaseException] = [ValueError("not sent")] * n

    def post(i: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as http:
            barrier.wait(30)
            try:
                answers[i] = http.post("/v1/runs", json=body)
            except httpx.HTTPError as exc:
                answers[i] = exc

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    return answers  # type: ignore[return-value]


def check_one_run(answers: list[httpx.Response], database_url: str) -> None:
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * (SUBMISSIONS - 1) + [202], [(a.status_code, a.text[:200]) for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(Run)) == 1
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_identical_submissions_at_once_make_one_run(
    database: str, processes: Processes, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'lindyn.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    env = clean_env(LINDYN_DATA_DIR=str(data), LINDYN_DATABASE_URL=url)  # the filesystem broker: no worker needed
    done = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for sub in ("queue", "control", "processed"):  # the filesystem broker's folders (a worker would make them)
        (tmp_path / "data" / "broker" / sub).mkdir(parents=True, exist_ok=True)
    api = start_api(processes, env)
    check_one_run(submit_at_once(str(api.http.base_url), BODY, SUBMISSIONS), url)
    forced = api.http.post("/v1/runs?force=true", json=BODY)  # force still makes a second run
    assert forced.status_code == 202
    assert api.http.post("/v1/runs", json=BODY).status_code == 200

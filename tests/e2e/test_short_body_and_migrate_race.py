"""Two faults of real processes (issue #13, item 7): a request whose Content-Length announces more body than it
sends is answered 408 and its connection closed after LINDYN_BODY_TIMEOUT_S, by a real uvicorn; two
``lindyn migrate`` started at once on a fresh SQLite directory (or PostgreSQL database) both succeed (a file
lock around the embedded migration, an advisory lock on PostgreSQL), leaving one schema at head."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

import migrations
from tests.e2e.conftest import LINDYN, Processes, clean_env, start_api

pytestmark = pytest.mark.e2e


def _read_all(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (the socket's timeout bounds each wait)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_body_shorter_than_its_content_length_is_answered_408(processes: Processes, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env(LINDYN_DATA_DIR=str(data), LINDYN_BODY_TIMEOUT_S="1")
    done = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for sub in ("queue", "control", "processed"):  # the filesystem broker's folders (a worker would make them)
        (data / "broker" / sub).mkdir(parents=True, exist_ok=True)
    api = start_api(processes, env)
    host, port = api.http.base_url.host, api.http.base_url.port
    sent = b'{"d": 10, "rank": 2'
    with socket.create_connection((host, port), timeout=60) as sock:  # 60 s: only a bound on a broken server
        sock.sendall(b"POST /v1/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n" + sent)
        answer = _read_all(sock)  # the server closes the connection after its answer
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:500]
    assert b"connection: close" in head.lower()
    detail = json.loads(body)["detail"][0]
    assert detail["loc"] == ["body"] and detail["type"] == "body_timeout"
    assert f"({len(sent)} bytes received)" in detail["msg"]
    # the server still answers, and a whole body is still accepted
    assert api.http.get("/health").status_code == 200
    ok = api.http.post("/v1/runs", json={"d": 10, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 5})
    assert ok.status_code == 202, ok.text


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_migrates_at_once_on_a_fresh_database(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    rounds = 3 if database == "sqlite" else 1  # the SQLite race is lost more often than not without the lock
    for attempt in range(rounds):
        data = tmp_path / f"data{attempt}"
        url = f"sqlite:///{data / 'lindyn.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
        env = clean_env(LINDYN_DATA_DIR=str(data), LINDYN_DATABASE_URL=url)
        procs = [subprocess.Popen([*LINDYN, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        outputs = [p.communicate(timeout=180) for p in procs]
        for p, (out, err) in zip(procs, outputs, strict=True):
            assert p.returncode == 0, err[-3000:]
            assert "database at revision head" in out
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        finally:
            engine.dispose()
        head = ScriptDirectory.from_config(migrations.alembic_config("sqlite://")).get_current_head()
        assert versions == [head]

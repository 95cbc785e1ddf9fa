"""Live runs in process (TestClient) on SQLite and PostgreSQL: the trajectory of a running run (the rows its
worker stored so far, marked partial, valid in every format), a requeued run's rows replaced, and the event
stream of a run (status, rows, reset, end; resumed with Last-Event-ID) and of a sweep. The worker's writes are
made here through the same functions the worker calls (models/results.py), with real dynamics."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from core import Settings, get_sessionmaker, session_scope
from dynamics import TRAJECTORY_COLUMNS, SimulationRequest, Trajectory, simulate
from models import Run, RunStatus
from models.reaper import requeue_if_stale
from models.results import store_live_rows, store_result
from models.runs import claim_run
from service.events import STEP_SPAN, run_cursor
from tests.service.conftest import make_client
from workers.tasks import ProgressWriter, execute_run

BODY = {"d": 10, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 30, "spectrum_every": 10,
        "dynamics": ["gd", "self_consistent"]}
REQ = SimulationRequest.model_validate(BODY)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=db_url, broker_url="memory://", events_poll_interval_s=0.01)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make_client(settings) as c:
        yield c


def _pieces() -> tuple[dict[str, list[Trajectory]], object]:
    """The rows dynamics gives a worker as the run goes, per dynamics, and the final result."""
    pieces: dict[str, list[Trajectory]] = {}
    result = simulate(REQ, rows=lambda _i, name, t: pieces.setdefault(name, []).append(t))
    return pieces, result


def _running(client: TestClient, settings: Settings) -> tuple[str, int]:
    """A submitted run, claimed as a worker claims it; its id and attempt."""
    rid = client.post("/v1/runs", json=BODY).json()["id"]
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        run = claim_run(s, uuid.UUID(rid))
        assert run is not None
        return rid, run.attempts


def _store(settings: Settings, rid: str, attempt: int, pieces: list[tuple[str, Trajectory]]) -> bool:
    """The pieces written as the worker of ``attempt`` writes them: with a progress write (its ProgressWriter)."""
    writer = ProgressWriter(settings, uuid.UUID(rid), attempt)
    for name, piece in pieces:
        writer.rows(0, name, piece)
    return writer.write(0, REQ.steps)


def _events(text: str) -> list[tuple[str | None, str, dict]]:
    """(id, event, data) of each event of a text/event-stream body (comments and retry lines skipped)."""
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":") and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
        if "event" in fields:
            out.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return out


def test_a_running_run_serves_its_rows_so_far_marked_partial(client: TestClient, settings: Settings) -> None:
    pieces, result = _pieces()
    rid, attempt = _running(client, settings)
    first = [(name, parts[0]) for name, parts in pieces.items()]
    assert _store(settings, rid, attempt, first)
    expected = pd.DataFrame(result.trajectory_columns())
    n = {name: len(t.step) for name, t in first}
    so_far = pd.concat([expected[expected.dynamics == name].head(k) for name, k in n.items()], ignore_index=True)

    r = client.get(f"/v1/runs/{rid}/trajectory")
    assert r.status_code == 200 and r.headers["x-lindyn-partial"] == "true"
    assert r.headers["x-lindyn-status"] == "running"
    assert json.loads(r.headers["x-lindyn-progress"]) == {"step": 0, "total": 30}
    pd.testing.assert_frame_equal(pd.DataFrame(r.json()), so_far)
    csv = client.get(f"/v1/runs/{rid}/trajectory", params={"format": "csv"})
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(csv.text)), so_far)
    parquet = client.get(f"/v1/runs/{rid}/trajectory", params={"format": "parquet", "spectrum": "true"})
    table = pq.read_table(io.BytesIO(parquet.content)).to_pandas()
    pd.testing.assert_frame_equal(table[list(TRAJECTORY_COLUMNS)], so_far)
    assert table.spectrum.notna().sum() == sum(len(t.spectrum_steps) for _, t in first) > 0

    # the same rows written again (a retried write) are not doubled; a stale attempt's worker writes none
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        assert store_live_rows(s, [(uuid.UUID(rid), name, piece) for name, piece in first]) == len(so_far)
    assert _store(settings, rid, attempt - 1, [(n, p[1]) for n, p in pieces.items()])  # running: not cancelled
    assert len(client.get(f"/v1/runs/{rid}/trajectory").json()["step"]) == len(so_far)

    # the end replaces them with the whole trajectory, no longer partial
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        store_result(s, uuid.UUID(rid), result)
    done = client.get(f"/v1/runs/{rid}/trajectory")
    assert done.headers["x-lindyn-partial"] == "false" and done.json() == result.trajectory_columns()


def test_a_requeued_run_replaces_its_rows_never_doubles_them(client: TestClient, settings: Settings) -> None:
    pieces, result = _pieces()
    rid, attempt = _running(client, settings)
    _store(settings, rid, attempt, [(name, parts[0]) for name, parts in pieces.items()])
    factory = get_sessionmaker(settings.db_url)
    with session_scope(factory) as s:  # its worker went silent: the reaper puts it back in the queue
        assert requeue_if_stale(s, uuid.UUID(rid), stale_after_s=0)
    r = client.get(f"/v1/runs/{rid}/trajectory")
    assert r.headers["x-lindyn-status"] == "queued" and r.json()["step"] == []
    # claimed again, mid-way; then a worker runs it to the end: every row once
    with session_scope(factory) as s:
        again = claim_run(s, uuid.UUID(rid))
        assert again is not None and again.attempts == attempt + 1
    _store(settings, rid, attempt + 1, [(name, parts[0]) for name, parts in pieces.items()])
    with session_scope(factory) as s:  # that worker lost too, the run sent again
        s.execute(update(Run).where(Run.id == uuid.UUID(rid)).values(status=RunStatus.queued))
    assert execute_run(uuid.UUID(rid), settings) == "succeeded"
    assert client.get(f"/v1/runs/{rid}/trajectory").json() == result.trajectory_columns()


def test_the_events_of_a_run_and_resuming_them(client: TestClient, settings: Settings) -> None:
    pieces, result = _pieces()
    rid, attempt = _running(client, settings)
    _store(settings, rid, attempt, [(name, parts[0]) for name, parts in pieces.items()])
    with session_scope(get_sessionmaker(settings.db_url)) as s:
        store_result(s, uuid.UUID(rid), result)

    r = client.get(f"/v1/runs/{rid}/events")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    assert [e[1] for e in events] == ["status", "rows", "end"]
    ids = [int(e[0]) for e in events]
    assert ids == sorted(ids)
    (_, _, status), (rows_id, _, rows), (_, _, end) = events
    assert status["status"] == "succeeded" and status["id"] == rid and end == {"status": "succeeded"}
    whole = result.trajectory_columns()
    assert {c: rows[c] for c in TRAJECTORY_COLUMNS} == whole
    assert run_cursor(rows_id) == (attempt, max(whole["step"]))
    s_cols = [c for c in rows if c.startswith("s_")]
    assert len(s_cols) == REQ.d and sum(v is not None for v in rows["s_1"]) == sum(
        len(t.spectrum_steps) for t in result.trajectories.values())

    # resumed after the first piece's last step: only the rows after it
    cut = min(int(parts[0].step[-1]) for parts in pieces.values())
    resumed = _events(client.get(f"/v1/runs/{rid}/events",
                                 headers={"Last-Event-ID": str(attempt * STEP_SPAN + cut + 1)}).text)
    assert [e[1] for e in resumed] == ["status", "rows", "end"]
    assert min(resumed[1][2]["step"]) > cut and len(resumed[1][2]["step"]) == sum(s > cut for s in whole["step"])
    # resumed from an earlier attempt's rows: told to drop them, then sent everything
    stale = _events(client.get(f"/v1/runs/{rid}/events",
                               headers={"Last-Event-ID": str((attempt - 1) * STEP_SPAN + cut + 1)}).text)
    assert [e[1] for e in stale] == ["reset", "status", "rows", "end"]
    assert stale[2][2]["step"] == whole["step"]
    # an unknown run: 404
    assert client.get(f"/v1/runs/{uuid.uuid4()}/events").status_code == 404


def test_the_events_of_a_sweep(client: TestClient, settings: Settings) -> None:
    sid = client.post("/v1/sweeps", json={"base": BODY, "axes": {"seed": {"values": [0, 1]}}}).json()["id"]
    client.post(f"/v1/sweeps/{sid}/cancel")
    events = _events(client.get(f"/v1/sweeps/{sid}/events").text)
    assert [e[1] for e in events] == ["status", "end"]
    assert events[0][2]["counts"]["cancelled"] == 2 and events[1][2] == {"status": "cancelled"}
    assert client.get(f"/v1/sweeps/{uuid.uuid4()}/events").status_code == 404


def test_a_stream_outlives_a_dropped_database_connection() -> None:
    """A poll that finds the database away is tried again at the next one (the stream goes on, nothing is
    lost); heartbeats go out while nothing happens; any other error ends the stream."""
    import anyio
    from sqlalchemy.exc import OperationalError

    from service.events import _stream, event_text

    pending: list[str] = []
    calls = {"n": 0}

    def poll() -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        if calls["n"] == 4:
            pending.append(event_text("end", {"status": "succeeded"}, 1))

    async def collect() -> list[str]:
        return [chunk async for chunk in _stream(poll, pending, lambda: calls["n"] >= 4, 0.001, 0.0)]

    chunks = anyio.run(collect)
    assert calls["n"] == 4 and chunks[0].startswith("retry: ") and chunks[-1].startswith("id: 1\nevent: end")
    assert ": keepalive\n\n" in chunks

    def broken() -> None:
        raise ValueError("a bug")

    async def fails() -> None:
        async for _ in _stream(broken, [], lambda: False, 0.001, 10.0):
            pass

    with pytest.raises(ValueError, match="a bug"):
        anyio.run(fails)


def test_a_running_runs_rows_never_get_ahead_of_its_status(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A progress write (rows and step in one transaction) committed between the stream's read of the run and its
    read of the rows: those rows wait for the next poll, behind the status that goes with them, so a client never
    holds rows past the progress it was shown (the dashboard's flake: curves grown, progress unchanged)."""
    import service.events as events_module

    pieces, _ = _pieces()
    rid, attempt = _running(client, settings)
    factory = get_sessionmaker(settings.db_url)
    first = [(name, parts[0]) for name, parts in pieces.items()]
    second = [(name, parts[1]) for name, parts in pieces.items()]
    p1 = max(int(t.step[-1]) for _, t in first)
    p2 = max(int(t.step[-1]) for _, t in second)
    writer = ProgressWriter(settings, uuid.UUID(rid), attempt)
    for name, piece in first:
        writer.rows(0, name, piece)
    assert writer.write(p1, REQ.steps)

    stream = events_module._RunStream(None, -1)
    real_live_rows = events_module.live_rows

    def rows_after_a_later_write(session, run, after):  # type: ignore[no-untyped-def]
        for name, piece in second:  # the worker's next progress write lands between the two reads
            writer.rows(0, name, piece)
        assert writer.write(p2, REQ.steps)
        return real_live_rows(session, run, after)

    monkeypatch.setattr(events_module, "live_rows", rows_after_a_later_write)
    stream.poll(factory, uuid.UUID(rid))
    monkeypatch.setattr(events_module, "live_rows", real_live_rows)
    sent = _events("".join(stream.events))
    assert [e[1] for e in sent] == ["status", "rows"]
    assert sent[0][2]["progress"]["step"] == p1 and max(sent[1][2]["step"]) == p1  # nothing past p1 yet
    stream.events.clear()
    stream.poll(factory, uuid.UUID(rid))
    sent = _events("".join(stream.events))
    assert [e[1] for e in sent] == ["status", "rows"]
    assert sent[0][2]["progress"]["step"] == p2 and max(sent[1][2]["step"]) == p2 and min(sent[1][2]["step"]) > p1

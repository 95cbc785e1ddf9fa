"""Streamed exports: every format gives the same table whether it comes in one batch or many; CSV and Parquet
are written as the batches are made (never all first); columnar JSON over many batches spools to a file that
is gone afterwards. And through the API: a trajectory read back in many batches equals the simulation."""

from __future__ import annotations

import asyncio
import io
import json
import math
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from core import Settings
from dynamics import SimulationRequest, simulate
from service.exports import Export, ExportFormat, export_response
from service.schemas.runs import finite_or_none
import service.trajectory
from workers.tasks import execute_run

TYPES = {"dynamics": pa.string(), "step": pa.int64(), "x": pa.float64()}


def _columns(n: int) -> dict[str, list[Any]]:
    x: list[Any] = [math.pi * i / 7 for i in range(n - 3)] + [None, math.inf, -math.inf]
    return {"dynamics": ["gd"] * n, "step": list(range(n)), "x": x}


def _batched(columns: dict[str, list[Any]], size: int, made: list[int] | None = None) -> Export:
    """``columns`` as batches of ``size`` rows, made lazily (each one counted in ``made``)."""
    schema = pa.schema([(k, TYPES[k]) for k in columns])
    n = len(columns["step"])

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, n, size):
            if made is not None:
                made.append(start)
            yield pa.RecordBatch.from_pydict({k: v[start : start + size] for k, v in columns.items()}, schema=schema)

    return Export(schema, batches(), "t")


def _body(export: Export, fmt: ExportFormat) -> bytes:
    async def collect() -> bytes:
        response = export_response(export, fmt)
        parts = [p if isinstance(p, bytes) else p.encode() async for p in response.body_iterator]
        return b"".join(parts)

    return asyncio.run(collect())


@pytest.mark.parametrize("size", [1, 7, 1000, 5000])
def test_json_is_the_same_whatever_the_batches(size: int) -> None:
    columns = _columns(2000)
    body = _body(_batched(columns, size), "json")
    # byte for byte what a JSON response of the whole table is: compact, non-finite numbers as null
    whole = {k: [finite_or_none(v) for v in vals] for k, vals in columns.items()}
    assert body == json.dumps(whole, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    assert json.loads(body)["x"][:10] == columns["x"][:10]  # exact floats


def test_json_of_an_empty_table_has_every_column() -> None:
    assert json.loads(_body(_batched({"dynamics": [], "step": [], "x": []}, 10), "json")) == {
        "dynamics": [], "step": [], "x": []
    }


def test_csv_is_written_as_the_batches_come_and_reads_back_exactly() -> None:
    n = 20_000
    columns = _columns(n)
    made: list[int] = []
    response = export_response(_batched(columns, 500, made), "csv")

    async def first_chunk_then_rest() -> tuple[int, str]:
        iterator = response.body_iterator.__aiter__()
        first = await iterator.__anext__()
        batches_when_first_sent = len(made)
        rest = [chunk async for chunk in iterator]
        return batches_when_first_sent, "".join([str(first), *map(str, rest)])

    batches_at_first, text = asyncio.run(first_chunk_then_rest())
    assert batches_at_first < len(made) == n // 500  # the first chunk went out long before the last batch was made
    frame = pd.read_csv(io.StringIO(text))
    assert frame["step"].tolist() == columns["step"]
    assert frame["x"].iloc[: n - 3].tolist() == columns["x"][: n - 3]  # exact floats
    assert math.isnan(frame["x"].iloc[n - 3]) and frame["x"].iloc[n - 2] == math.inf


def test_parquet_is_a_row_group_per_batch_and_reads_back_exactly() -> None:
    columns = _columns(3000)
    made: list[int] = []
    body = _body(_batched(columns, 1000, made), "parquet")
    parquet = pq.ParquetFile(io.BytesIO(body))
    assert parquet.metadata.num_row_groups == len(made) == 3
    assert parquet.read().to_pydict() == columns


def test_json_spool_is_removed_even_when_the_client_goes_away(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert json.loads(_body(_batched(_columns(100), 10), "json"))["step"] == list(range(100))
    assert list(tmp_path.iterdir()) == []

    async def only_the_start() -> None:
        iterator = export_response(_batched(_columns(100), 10), "json").body_iterator.__aiter__()
        assert await iterator.__anext__() == b"{"
        assert len(list(tmp_path.iterdir())) == 1  # spooled
        await iterator.aclose()  # what Starlette does when the client disconnects

    asyncio.run(only_the_start())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet"])
def test_a_client_gone_mid_stream_closes_the_export_at_once(
    fmt: ExportFormat, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The whole ASGI response, as a server runs it: the client disconnects while a chunk is being sent
    (Starlette cancels the stream, leaving the body's generator suspended); the response closes the
    generator itself, before it returns: no garbage collection, no timing."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    closed: list[bool] = []
    export = _batched(_columns(100), 10)
    inner = export.batches

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from inner
        finally:
            closed.append(True)

    export.batches = batches()

    async def disconnect_mid_stream() -> None:
        first_chunk = asyncio.Event()
        spooled: list[int] = []

        async def receive() -> dict[str, Any]:
            await first_chunk.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message["body"]:
                spooled.append(len(list(tmp_path.iterdir())))
                first_chunk.set()
                await asyncio.Event().wait()  # the client is gone: this send never completes

        response = export_response(export, fmt)
        await response({"type": "http", "asgi": {"spec_version": "2.3"}}, receive, send)
        assert spooled == [1 if fmt == "json" else 0]  # JSON over many batches had spooled

    asyncio.run(disconnect_mid_stream())
    assert list(tmp_path.iterdir()) == []
    assert closed == [True]  # the batches' generator was closed too (its database cursor released)


# ---- through the API -------------------------------------------------------------------------------------
BODY = {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 60, "spectrum_every": 7,
        "dynamics": ["gd", "self_consistent"]}


def test_a_trajectory_read_in_many_batches_equals_the_simulation(
    client: TestClient, embedded_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = client.post("/v1/runs", json=BODY).json()["id"]
    assert execute_run(uuid.UUID(rid), embedded_settings) == "succeeded"
    result = simulate(SimulationRequest.model_validate(BODY))
    expected = pd.DataFrame(result.trajectory_columns())
    monkeypatch.setattr(service.trajectory, "rows_per_batch", lambda n_columns: 5)  # 24+ batches of 5 rows

    url = f"/v1/runs/{rid}/trajectory"
    assert client.get(url).json() == result.trajectory_columns()
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(client.get(url, params={"format": "csv"}).text)), expected)
    parquet = pq.ParquetFile(io.BytesIO(client.get(url, params={"format": "parquet"}).content))
    assert parquet.metadata.num_row_groups > 20
    assert parquet.read().to_pydict() == result.trajectory_columns()

    # the spectrum: s_1..s_d in JSON and CSV, a list column in Parquet; null where not recorded
    for fmt in ("json", "csv", "parquet"):
        r = client.get(url, params={"format": fmt, "spectrum": "true"})
        if fmt == "json":
            frame = pd.DataFrame(r.json())
        elif fmt == "csv":
            frame = pd.read_csv(io.StringIO(r.text))
        else:
            frame = pq.read_table(io.BytesIO(r.content)).to_pandas()
        for name, traj in result.trajectories.items():
            rows = frame[frame.dynamics == name].set_index("step")
            recorded = set(traj.spectrum_steps.tolist())
            for j, step in enumerate(traj.spectrum_steps.tolist()):
                got = rows.loc[step, "spectrum"] if fmt == "parquet" else rows.loc[step, [f"s_{i + 1}" for i in range(6)]]
                np.testing.assert_array_equal(np.asarray(got, dtype=float), traj.spectrum[j])
            others = [s for s in rows.index if s not in recorded]
            assert others, "some steps have no spectrum"
            if fmt == "parquet":
                assert rows.loc[others, "spectrum"].isna().all()
            else:
                assert rows.loc[others, "s_1"].isna().all() and rows.loc[others, "s_6"].isna().all()


def test_export_memory_bench_runs_and_both_ways_give_the_same_table() -> None:
    """``python -m bench.export_memory`` (small): every format measured both ways, the same table each time
    (it exits non-zero otherwise). Its memory figures are for the closing notes, not asserted."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "bench.export_memory", "--rows", "3000", "--d", "8", "--repeats", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["json"], ["csv"], ["parquet"])]
    assert [r[0] for r in rows] == ["json", "csv", "parquet"] and all(r[-1] == "True" for r in rows), done.stdout

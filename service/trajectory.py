"""A run's trajectory as an export: its rows read from the database a batch at a time while the response is
written, turned into Arrow record batches (the spectrum straight from its stored bytes, never as Python
lists of the whole table)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
from sqlalchemy.orm import Session, sessionmaker

from dynamics import METRIC_COLUMNS, TRAJECTORY_COLUMNS
from models import Run
from models.results import spectrum_width, trajectory_chunks
from service.exports import Export, ExportFormat, rows_per_batch

TRAJECTORY_TYPES: dict[str, pa.DataType] = {
    "dynamics": pa.string(),
    "step": pa.int64(),
    **{c: pa.float64() for c in METRIC_COLUMNS},
}


def trajectory_export(
    factory: sessionmaker[Session], session: Session, run: Run, dynamics: Sequence[str] | None, *,
    spectrum: bool, fmt: ExportFormat,
) -> Export:
    """The run's trajectory (columns dynamics, step, the metrics) for ``fmt``; with ``spectrum``, the
    singular values where recorded: one column per index ``s_1..s_d`` (JSON, CSV) or a list column
    ``spectrum`` (Parquet), null at steps without one. ``session`` answers what the schema needs now; the
    rows are read later, as the response is sent, in a session of their own from ``factory``."""
    width = spectrum_width(session, run) if spectrum else 0
    as_list = spectrum and fmt == "parquet"
    fields = [pa.field(name, TRAJECTORY_TYPES[name]) for name in TRAJECTORY_COLUMNS]
    if as_list:
        fields.append(pa.field("spectrum", pa.list_(pa.float64())))
    else:
        fields += [pa.field(f"s_{j + 1}", pa.float64()) for j in range(width)]
    schema = pa.schema(fields)
    run_id, names = run.id, [n for n in run.dynamics_list if dynamics is None or n in dynamics]

    def batches() -> Iterator[pa.RecordBatch]:
        with factory() as own:
            # a batch of about the same number of values whether the spectrum is one list column or d columns
            chunk_rows = rows_per_batch(len(TRAJECTORY_COLUMNS) + width)
            for rows in trajectory_chunks(own, run_id, names, spectrum=spectrum, chunk_rows=chunk_rows):
                yield _record_batch(rows, schema, width, as_list=as_list, spectrum=spectrum)

    return Export(schema, batches(), filename=f"trajectory-{run_id}")


def _record_batch(rows: Sequence[Any], schema: pa.Schema, width: int, *, as_list: bool,
                  spectrum: bool) -> pa.RecordBatch:
    columns = list(zip(*rows))  # a chunk of the database's rows is never empty
    arrays: list[pa.Array] = [
        pa.array(columns[i], type=TRAJECTORY_TYPES[name]) for i, name in enumerate(TRAJECTORY_COLUMNS)
    ]
    if spectrum:
        arrays += _spectrum_arrays(columns[-1], width, as_list=as_list)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _spectrum_arrays(blobs: Sequence[bytes | None], width: int, *, as_list: bool) -> list[pa.Array]:
    """The stored spectra (float64 little-endian bytes, or None) of a batch: one list array, or ``width``
    float arrays (null where a row has none)."""
    present = np.array([b is not None for b in blobs], dtype=bool)
    values = np.frombuffer(b"".join(b for b in blobs if b is not None), dtype="<f8").astype(np.float64)
    if as_list:
        lengths = np.array([len(b) // 8 if b is not None else 0 for b in blobs], dtype=np.int32)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        return [pa.ListArray.from_arrays(offsets, pa.array(values), mask=pa.array(~present))]
    full = np.full((len(blobs), width), np.nan)
    full[present] = values.reshape(-1, width)
    return [pa.array(full[:, j], mask=~present) for j in range(width)]


def sweep_trajectories_export(
    factory: sessionmaker[Session], runs: Sequence[Run], dynamics: Sequence[str] | None, *, filename: str
) -> Export:
    """Every run's trajectory in one table: columns run_id, dynamics, step and the metrics, the runs in the
    order given (grid order) and each as ``trajectory_export`` has it. The rows are read while the response
    is sent, a run after another, in a session of their own from ``factory``, and sent in batches of about
    the same size whatever the runs' lengths."""
    schema = pa.schema([pa.field("run_id", pa.string())]
                       + [pa.field(name, TRAJECTORY_TYPES[name]) for name in TRAJECTORY_COLUMNS])  # fmt: skip
    plan = [(run.id, [n for n in run.dynamics_list if dynamics is None or n in dynamics]) for run in runs]

    def batches() -> Iterator[pa.RecordBatch]:
        size = rows_per_batch(len(schema))
        ids: list[str] = []
        rows: list[Any] = []
        with factory() as own:
            for run_id, names in plan:
                for chunk in trajectory_chunks(own, run_id, names, chunk_rows=size):
                    ids += [str(run_id)] * len(chunk)
                    rows += chunk
                    while len(rows) >= size:
                        yield _sweep_batch(ids[:size], rows[:size], schema)
                        del ids[:size], rows[:size]
        if rows:
            yield _sweep_batch(ids, rows, schema)

    return Export(schema, batches(), filename=filename)


def _sweep_batch(ids: Sequence[str], rows: Sequence[Any], schema: pa.Schema) -> pa.RecordBatch:
    columns = list(zip(*rows))
    arrays = [pa.array(ids, type=pa.string())]
    arrays += [pa.array(columns[i], type=TRAJECTORY_TYPES[name]) for i, name in enumerate(TRAJECTORY_COLUMNS)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)

"""Tables as responses, streamed: JSON (one list per column), CSV or Parquet, chosen by ``?format=`` or the
Accept header."""

from __future__ import annotations

import csv
import io
import itertools
import json
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import HTTPException, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.types import Receive, Scope, Send

from service.schemas.runs import finite_or_none

ExportFormat = Literal["json", "csv", "parquet"]
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
_ACCEPTED: dict[str, ExportFormat] = {
    "application/json": "json",
    "text/csv": "csv",
    PARQUET_MEDIA_TYPE: "parquet",
    "application/x-parquet": "parquet",
}


def export_responses(description: str, headers: dict[str, Any] | None = None) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses every export endpoint shares: 200 in its three media types (with ``headers``,
    if any), and 406."""
    return {
        200: {"description": description,
              "content": {"application/json": {}, "text/csv": {}, PARQUET_MEDIA_TYPE: {}},
              **({"headers": headers} if headers else {})},
        406: {"description": "the Accept header names no format this endpoint produces"},
    }  # fmt: skip


def export_format(
    request: Request,
    format: ExportFormat | None = Query(  # noqa: A002, B008 - the query parameter is called format
        None, description="json (columnar), csv or parquet; without it, the Accept header decides (default json)"
    ),
) -> ExportFormat:
    """The format of an export: ``?format=`` if given, else the first media type of the Accept header that
    is one of application/json, text/csv, application/vnd.apache.parquet (*/* or none: json); 406 when
    the Accept header names only other types."""
    if format is not None:
        return format
    accept = request.headers.get("accept", "")
    if not accept.strip():
        return "json"
    ranked = []
    for i, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        ranked.append((-q, i, media.lower()))
    for neg_q, _, media in sorted(ranked):
        if neg_q < 0 and media in _ACCEPTED:
            return _ACCEPTED[media]
        if neg_q < 0 and media in ("*/*", "application/*", "text/*"):
            return "csv" if media == "text/*" else "json"
    raise HTTPException(
        status.HTTP_406_NOT_ACCEPTABLE,
        f"cannot produce {accept!r}: use application/json, text/csv or {PARQUET_MEDIA_TYPE} (or ?format=)",
    )


@dataclass
class Export:
    """A table to send: its schema (names and Parquet types) and its rows as Arrow record batches, made one
    at a time while the response is written (a generator reading the database), so that no format ever
    holds the whole table: CSV and Parquet are written a batch at a time; columnar JSON, which needs each
    column whole before the next, spools the batches to a temporary Arrow file (LZ4) first when there is
    more than one, and reads them back a column at a time (memory: about one batch, whatever the size of
    the table)."""

    schema: pa.Schema
    batches: Iterable[pa.RecordBatch]
    filename: str

    @classmethod
    def of_columns(cls, columns: dict[str, list[Any]], types: dict[str, pa.DataType], filename: str) -> Export:
        """A table already in memory (e.g. a sweep's, bounded by the grid limit) as one batch."""
        schema = pa.schema([(name, types[name]) for name in columns])
        return cls(schema, [pa.RecordBatch.from_pydict(columns, schema=schema)], filename)

    def close(self) -> None:
        """Close the batches' generator (its database session with it), if they are one."""
        close = getattr(self.batches, "close", None)
        if close is not None:
            close()


def rows_per_batch(n_columns: int, values: int = 1 << 18) -> int:
    """Rows per record batch so that a batch holds about ``values`` cells (at least 256 rows)."""
    return max(256, values // max(1, n_columns))


def export_response(export: Export, fmt: ExportFormat) -> StreamingResponse:
    """``export`` streamed in ``fmt``: JSON (one list per column, non-finite numbers as null), CSV (empty
    for null, floats in their shortest exact form) or Parquet (a row group per batch)."""
    if fmt == "json":
        return ClosingStreamingResponse(_closing_export(export, _json_chunks), media_type="application/json")
    disposition = {"Content-Disposition": f'attachment; filename="{export.filename}.{fmt}"'}
    if fmt == "csv":
        return ClosingStreamingResponse(_closing_export(export, _csv_chunks), media_type="text/csv",
                                        headers=disposition)
    return ClosingStreamingResponse(_closing_export(export, _parquet_chunks), media_type=PARQUET_MEDIA_TYPE,
                                    headers=disposition)


def _closing_export(export: Export, encode: Callable[[Export], Iterator[Any]]) -> Iterator[Any]:
    """The chunks of ``encode(export)``; the export's batches closed when they stop, early or not."""
    try:
        yield from encode(export)
    finally:
        export.close()


class ClosingStreamingResponse(StreamingResponse):
    """A response streaming a sync generator (made a chunk at a time in a worker thread) that closes it when
    the response ends, however it ends: sent whole, the client gone (Starlette cancels the stream), or an
    error. Closing runs the generator's ``finally`` and ``with`` exits (the JSON spool removed, the
    database cursor released) at once, not when the garbage collector gets to it."""

    def __init__(self, chunks: Iterator[Any], **kwargs: Any) -> None:
        super().__init__(_closing(chunks), **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # also when the stream was cancelled
                await self.body_iterator.aclose()  # type: ignore[attr-defined]


async def _closing(chunks: Iterator[Any]) -> AsyncIterator[Any]:
    """``chunks`` made in a worker thread, closed in one when the iteration stops, early or not."""
    try:
        async for chunk in iterate_in_threadpool(chunks):
            yield chunk
    finally:
        # the thread that made the last chunk has returned (anyio does not abandon it on cancellation)
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(getattr(chunks, "close", lambda: None))


# ---- CSV -------------------------------------------------------------------------------------------------
def _csv_chunks(export: Export) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(export.schema.names)
    for batch in export.batches:
        columns = [[_csv_cell(v) for v in col.to_pylist()] for col in batch.columns]
        writer.writerows(zip(*columns))
        if out.tell() > _CHUNK_BYTES:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _csv_cell(v: Any) -> Any:
    """Empty for null; floats in their shortest exact form (repr), so a CSV reads back to the same numbers."""
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else v


# ---- Parquet ---------------------------------------------------------------------------------------------
class _Sink(io.RawIOBase):
    """A write-only file whose bytes are taken away as they are written (the Parquet writer's output)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._parts.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


def _parquet_chunks(export: Export) -> Iterator[bytes]:
    sink = _Sink()
    with pq.ParquetWriter(sink, export.schema) as writer:
        for batch in export.batches:
            writer.write_batch(batch)
            if data := sink.take():
                yield data
    yield sink.take()


# ---- columnar JSON ---------------------------------------------------------------------------------------
def _json_chunks(export: Export) -> Iterator[bytes]:
    """``{"name": [values], ...}`` as Starlette's JSONResponse writes it (compact), a column at a time."""
    batches = iter(export.batches)
    first = list(itertools.islice(batches, 2))
    if len(first) < 2:  # one batch (or none): straight from memory
        yield _json_columns(export.schema, [b.columns for b in first])
        return
    with tempfile.TemporaryDirectory(prefix="lindyn-export-") as tmp:
        path = str(Path(tmp) / "spool.arrow")
        options = pa.ipc.IpcWriteOptions(compression="lz4" if pa.Codec.is_available("lz4") else None)
        with pa.OSFile(path, "wb") as f, pa.ipc.new_file(f, export.schema, options=options) as spool:
            for batch in itertools.chain(first, batches):
                spool.write_batch(batch)
        yield b"{"
        for j, name in enumerate(export.schema.names):
            yield (b"," if j else b"") + _json(name) + b":["
            size = 0
            # read back this column only: the reader fetches just its buffers, batch by batch
            with pa.OSFile(path, "rb") as f:
                reader = pa.ipc.open_file(f, options=pa.ipc.IpcReadOptions(included_fields=[j]))
                for i in range(reader.num_record_batches):
                    values = reader.get_batch(i).column(0).to_pylist()
                    if values:
                        yield (b"," if size else b"") + _json(values)[1:-1]
                        size += len(values)
            yield b"]"
        yield b"}"


def _json_columns(schema: pa.Schema, batches: list[list[pa.Array]]) -> bytes:
    columns = {name: [v for cols in batches for v in cols[j].to_pylist()] for j, name in enumerate(schema.names)}
    return _json(columns)


def _json(value: Any) -> bytes:
    """Compact JSON, non-finite floats as null."""
    return json.dumps(_finite(value), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    return value


_CHUNK_BYTES = 64 * 1024

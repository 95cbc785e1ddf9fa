"""Columnar data as a response: JSON (one list per column), CSV or Parquet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import Response
from fastapi.responses import JSONResponse, StreamingResponse

from service.schemas.runs import finite_or_none

ExportFormat = Literal["json", "csv", "parquet"]
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


def columns_response(
    columns: dict[str, list[Any]], fmt: ExportFormat, *, filename: str, types: dict[str, pa.DataType]
) -> Response:
    """``columns`` (equal lengths) in ``fmt``; ``types`` gives each column's Parquet type."""
    if fmt == "json":
        return JSONResponse({name: [finite_or_none(v) for v in values] for name, values in columns.items()})
    disposition = {"Content-Disposition": f'attachment; filename="{filename}.{fmt}"'}
    if fmt == "csv":
        return StreamingResponse(_csv_lines(columns), media_type="text/csv", headers=disposition)
    schema = pa.schema([(name, types[name]) for name in columns])
    table = pa.Table.from_pydict(columns, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return Response(buf.getvalue(), media_type=PARQUET_MEDIA_TYPE, headers=disposition)


def _csv_lines(columns: dict[str, list[Any]]) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names: Sequence[str] = list(columns)
    writer.writerow(names)
    n = len(columns[names[0]]) if names else 0
    for i in range(n):
        writer.writerow([_csv_cell(columns[c][i]) for c in names])
        if out.tell() > 64 * 1024:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _csv_cell(v: Any) -> Any:
    """Empty for null; floats in their shortest exact form (repr), so a CSV reads back to the same numbers."""
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else v

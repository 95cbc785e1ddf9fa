"""Columnar data as a response: JSON (one list per column), CSV or Parquet."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import HTTPException, Query, Request, Response, status
from fastapi.responses import JSONResponse, StreamingResponse

from service.schemas.runs import finite_or_none

ExportFormat = Literal["json", "csv", "parquet"]
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"
_ACCEPTED: dict[str, ExportFormat] = {
    "application/json": "json",
    "text/csv": "csv",
    PARQUET_MEDIA_TYPE: "parquet",
    "application/x-parquet": "parquet",
}


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


def expand_list_column(columns: dict[str, list[Any]], name: str, prefix: str) -> dict[str, list[Any]]:
    """For JSON and CSV: a column of lists (or None) becomes columns ``prefix1``, ``prefix2``, ... (None-padded)."""
    values = columns[name]
    width = max((len(v) for v in values if v is not None), default=0)
    out = {k: v for k, v in columns.items() if k != name}
    for j in range(width):
        out[f"{prefix}{j + 1}"] = [None if v is None or j >= len(v) else v[j] for v in values]
    return out


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

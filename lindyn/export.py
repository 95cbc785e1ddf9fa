"""Write columnar tables (dict of equal-length columns) as CSV, Parquet or JSON, chosen by file extension."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMATS = {".csv": "csv", ".parquet": "parquet", ".json": "json"}


def format_of(path: str | Path) -> str:
    """The format named by a path's extension; ValueError for anything else."""
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"unknown output format {ext or '(none)'!r} for {path}: use .csv, .parquet or .json")
    return FORMATS[ext]


def write_columns(columns: dict[str, list[Any]], path: str | Path) -> Path:
    """Write ``columns`` to ``path`` (.csv, .parquet, .json = columnar {name: [values]}); NaN -> empty/null."""
    fmt = format_of(path)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        path.write_text(json.dumps(columns))
        return path
    import pyarrow as pa

    table = pa.table(columns)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    else:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, path)
    return path

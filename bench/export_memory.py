"""Memory of a large trajectory export: streamed (GET /v1/runs/{id}/trajectory as served) against the same
table built whole in memory first (how exports were made before they streamed), measured in the same run.

    python -m bench.export_memory                       # 120 000 rows, d = 200, a spectrum every 4th row
    python -m bench.export_memory --rows 40000 --d 100 --database postgresql+psycopg://root@127.0.0.1/test

A run with a synthetic trajectory is written straight into a fresh database (SQLite by default). Each
(format, way) is measured in a fresh process: the peak resident memory (ru_maxrss) while producing the whole
body, minus the process's resident memory just before, and the wall time. The streamed body is consumed
chunk by chunk through the ASGI app (as a server would send it), hashed and dropped; the in-memory body is
made whole. The two must be the same table: equal bytes for JSON and CSV, equal tables for Parquet (whose
row groups differ).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

FORMATS = ("json", "csv", "parquet")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the data ----------------------------------------------------------------------------------------------
def make_database(url: str, rows: int, d: int, spectrum_every: int) -> str:
    """A migrated database holding one finished GD + self-consistent run with ``rows`` trajectory rows; its id."""
    import numpy as np
    from sqlalchemy import insert

    import migrations
    from dynamics import METRIC_COLUMNS, SimulationRequest
    from core import get_sessionmaker, session_scope
    from models.results import encode_spectrum
    from models.runs import new_run
    from models.tables import TrajectoryPoint

    migrations.upgrade(url)
    rng = np.random.default_rng(0)
    request = SimulationRequest.model_validate(
        {"d": d, "rank": 5, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": rows // 2, "dynamics": ["gd", "self_consistent"]}
    )
    run = new_run(request)
    run.status = "succeeded"
    with session_scope(get_sessionmaker(url)) as session:
        session.add(run)
        session.flush()
        half = rows // 2
        for name in ("gd", "self_consistent"):
            for start in range(0, half, 5000):
                chunk = []
                for step in range(start, min(half, start + 5000)):
                    values = rng.random(len(METRIC_COLUMNS))
                    spectrum = np.sort(rng.random(d))[::-1] if step % spectrum_every == 0 else None
                    chunk.append({
                        "run_id": run.id, "dynamics": name, "step": step, "recorded": True,
                        **{c: float(v) for c, v in zip(METRIC_COLUMNS, values)},
                        "spectrum": None if spectrum is None else encode_spectrum(spectrum), "distance": None,
                    })
                session.execute(insert(TrajectoryPoint), chunk)
    return str(run.id)


# ---- one measurement (in a fresh process) ------------------------------------------------------------------
def streamed(url: str, run_id: str, fmt: str, out: str) -> None:
    """The body as the API sends it, consumed chunk by chunk (each written to ``out`` and dropped)."""
    from core import Settings
    from service.main import create_app

    app = create_app(Settings(database_url=url))
    path = f"/v1/runs/{run_id}/trajectory"

    async def call(f: Any) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
                 "query_string": f"format={fmt}&spectrum=true".encode(), "headers": [(b"host", b"bench")],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip

        sent_request = False

        async def receive() -> dict[str, Any]:  # the request, then nothing until the response is done
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200, message
            elif message["type"] == "http.response.body":
                f.write(message.get("body", b""))

        await app(scope, receive, send)

    with open(out, "wb") as f:
        asyncio.run(call(f))


def in_memory(url: str, run_id: str, fmt: str, out: str) -> None:
    """The body made whole first (every column a Python list, the spectrum expanded, then encoded), as
    exports were made before they streamed; then written to ``out``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core import get_sessionmaker
    from models import Run
    from models.results import trajectory_columns
    from service.exports import _csv_cell
    from service.schemas.runs import finite_or_none
    from service.trajectory import TRAJECTORY_TYPES

    with get_sessionmaker(url)() as session:
        run = session.get(Run, uuid.UUID(run_id))
        assert run is not None
        columns = trajectory_columns(session, run, spectrum=True)
    if fmt == "parquet":
        types = {**TRAJECTORY_TYPES, "spectrum": pa.list_(pa.float64())}
        table = pa.Table.from_pydict(columns, schema=pa.schema([(k, types[k]) for k in columns]))
        buf = io.BytesIO()
        pq.write_table(table, buf)
        body = buf.getvalue()
    else:
        spectra = columns.pop("spectrum")
        width = max((len(s) for s in spectra if s is not None), default=0)
        for j in range(width):
            columns[f"s_{j + 1}"] = [None if s is None else s[j] for s in spectra]
        if fmt == "json":
            whole = {k: [finite_or_none(v) for v in vals] for k, vals in columns.items()}
            body = json.dumps(whole, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        else:
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(list(columns))
            writer.writerows(zip(*([_csv_cell(v) for v in vals] for vals in columns.values())))
            body = text.getvalue().encode()
    with open(out, "wb") as f:
        f.write(body)


def digest_of(path: str, fmt: str) -> str:
    """sha256 of the body; of the decoded table for Parquet (whose row groups differ between the two ways)."""
    if fmt != "parquet":
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    h = hashlib.sha256()
    table = pq.read_table(path)
    for name in table.column_names:
        col = table[name].combine_chunks()
        h.update(name.encode())
        if name == "spectrum":
            h.update(np.asarray(pc.list_value_length(col).fill_null(-1)).tobytes())
            h.update(np.asarray(pc.list_flatten(col)).tobytes())
        else:
            h.update(repr(col.to_pylist()).encode())
    return h.hexdigest()


def measure(args: argparse.Namespace) -> None:
    """Child process: one (way, format); prints JSON."""
    os.environ["LINDYN_DATABASE_URL"] = args.url
    import pyarrow.parquet  # noqa: F401 - imported before the baseline, like everything the app imports
    import service.main  # noqa: F401

    base_rss, t0 = rss_mb(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lindyn-export-bench-") as tmp:
        out = f"{tmp}/body"
        (streamed if args.way == "streamed" else in_memory)(args.url, args.run_id, args.format, out)
        peak, seconds = peak_mb() - base_rss, time.perf_counter() - t0
        print(json.dumps({"peak_mb": peak, "seconds": seconds, "digest": digest_of(out, args.format),
                          "bytes": os.path.getsize(out)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=120_000, help="trajectory rows (half GD, half self-consistent)")
    p.add_argument("--d", type=int, default=200, help="singular values per recorded spectrum")
    p.add_argument("--spectrum-every", type=int, default=4, help="a spectrum on every n-th row")
    p.add_argument("--database", help="SQLAlchemy URL of an empty database (default: a temporary SQLite file)")
    p.add_argument("--repeats", type=int, default=3, help="processes per (format, way); the median is reported")
    p.add_argument("--child", nargs=4, metavar=("URL", "RUN_ID", "WAY", "FORMAT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.url, args.run_id, args.way, args.format = args.child
        measure(args)
        return

    with tempfile.TemporaryDirectory(prefix="lindyn-export-bench-") as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        t0 = time.perf_counter()
        run_id = make_database(url, args.rows, args.d, args.spectrum_every)
        spectra = args.rows // args.spectrum_every
        print(f"export memory: {args.rows} rows, d={args.d}, {spectra} spectra ({spectra * args.d * 8 / 2**20:.0f} MiB "
              f"of singular values), {url.split(':')[0]}; made in {time.perf_counter() - t0:.1f} s")
        print(f"{'format':8s} {'streamed MB':>12s} {'in memory MB':>13s} {'ratio':>6s} {'streamed s':>11s} "
              f"{'in memory s':>12s} {'body MB':>8s}  same")
        for fmt in FORMATS:
            got: dict[str, list[dict[str, Any]]] = {"streamed": [], "in_memory": []}
            for _ in range(args.repeats):
                for way in got:
                    child = subprocess.run(
                        [sys.executable, "-m", "bench.export_memory", "--child", url, run_id, way, fmt],
                        capture_output=True, text=True,
                    )
                    if child.returncode != 0:
                        raise SystemExit(f"{way} {fmt} failed:\n{child.stderr[-3000:]}")
                    out = child.stdout
                    got[way].append(json.loads(out.strip().splitlines()[-1]))
            s, m = got["streamed"], got["in_memory"]
            same = all(x["digest"] == m[0]["digest"] for x in s + m)
            s_mb = statistics.median(x["peak_mb"] for x in s)
            m_mb = statistics.median(x["peak_mb"] for x in m)
            print(f"{fmt:8s} {s_mb:12.0f} {m_mb:13.0f} {m_mb / max(s_mb, 1):5.1f}x "
                  f"{statistics.median(x['seconds'] for x in s):11.2f} {statistics.median(x['seconds'] for x in m):12.2f} "
                  f"{s[0]['bytes'] / 2**20:8.0f}  {same}")
            if not same:
                raise SystemExit(f"{fmt}: the streamed table differs from the in-memory one")


if __name__ == "__main__":
    main()

"""``lindyn reproduce figure1|figure2``: submit the paper's settings (docs/method.md section 6) to a
lindyn service, wait with a progress bar, and write the figures.

With ``--embedded`` a private embedded service (SQLite + filesystem broker under a temporary data
folder, one worker process per core) is started for the command and stopped after it; otherwise ``--server`` is used.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dynamics.result import FIGURE2_METRICS
from lindyn.commands.service_options import Service, with_service_options

reproduce_app = typer.Typer(
    help="Reproduce the paper's Figures 1 and 2 through a lindyn service.", no_args_is_help=True
)

#: docs/method.md section 6. GD in the paper's order (``sequential``: W2's update uses the new W1). The
#: notebook's 100 iterations are 100 updates with the errors measured after each, A_0..A_100: lindyn's
#: ``steps = 100`` records the same 101 iterates.
FIGURE1: dict[str, Any] = {
    "d": 500, "rank": 5, "gamma_sigma2": -1.85, "gamma_w": 2.25, "lr_constant": 5, "steps": 100,
    "dynamics": ["gd", "self_consistent"], "gd_update": "sequential", "record_every": 1, "spectrum_every": 1,
}  # fmt: skip
#: Figure 2's cap as the paper counts it: main.ipynb's loop ``for i in range(750)`` measures A_0..A_749
PAPER_ITERATIONS = 750

OutDirOpt = Annotated[Path, typer.Option("--out-dir", help="where the figures and data are written")]
EmbeddedOpt = Annotated[
    bool, typer.Option("--embedded", help="start a private embedded service for this command (no server needed)")
]
FormatOpt = Annotated[str, typer.Option("--format", help="png or svg")]


def figure2_request(
    d: int, grid: int, dynamics: list[str], iterations: int = PAPER_ITERATIONS
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(base, axes) of the paper's Figure 2: gamma_sigma2 in linspace(-2.2, -0.8), gamma_w in
    linspace(1.75, 2.8), GD in the paper's (sequential) order (and self-consistent), lr_constant 50, paper
    stopping, at most ``iterations`` iterations as main.ipynb counts them (750 there).

    The notebook's ``for i in range(n)`` measures A_0..A_{n-1} (its last update is never measured); lindyn's
    ``steps = s`` measures A_0..A_s, so ``steps = n - 1`` gives the same iterates, metrics and summaries
    (docs/method.md section 6; tests/dynamics/test_paper_reference.py checks it)."""
    base = {
        "d": d, "rank": 5, "gamma_sigma2": -1.5, "gamma_w": 2.0, "dynamics": dynamics, "lr_constant": 50,
        "stopping": "paper", "steps": iterations - 1, "gd_update": "sequential", "record_every": 50,
        "spectrum_every": 0,
    }  # fmt: skip
    axes = {"gamma_sigma2": {"linspace": [-2.2, -0.8, grid]}, "gamma_w": {"linspace": [1.75, 2.8, grid]}}
    return base, axes


@reproduce_app.command("figure1")
@with_service_options
def figure1(
    out_dir: OutDirOpt = Path("figures"),
    embedded: EmbeddedOpt = False,
    fmt: FormatOpt = "png",
    *,
    service: Service,
) -> None:
    """Figure 1: d = 500, k = 5, gamma_sigma2 = -1.85, gamma_w = 2.25, lr_constant 5, 100 steps (100 updates,
    as in the paper), GD (the paper's sequential order) and self-consistent; writes figure1.<format> and the trajectory figure1.parquet."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with _service(service.server, embedded) as url:
        client = service.client(url)
        t0 = time.perf_counter()
        run = client.submit(FIGURE1)
        run.wait(progress=True)
        wall = time.perf_counter() - t0
        if run.status != "succeeded":
            typer.echo(f"error: run {run.id} {run.status}: {run.error or ''}", err=True)
            raise typer.Exit(1)
        run.figure(out_dir / f"figure1.{fmt}")
        run.export(out_dir / "figure1.parquet")
    summary = {k: {m: v[m] for m in FIGURE2_METRICS if m in v} for k, v in run.summary.items()}
    typer.echo(json.dumps({"run": run.id, "wall_s": round(wall, 2), "summaries": summary,
                           "comparison": run.data.get("comparison"),
                           "figure": str(out_dir / f"figure1.{fmt}")}, indent=2))  # fmt: skip


@reproduce_app.command("figure2")
@with_service_options
def figure2(
    out_dir: OutDirOpt = Path("figures"),
    embedded: EmbeddedOpt = False,
    fmt: FormatOpt = "png",
    d: Annotated[int, typer.Option(help="dimension (the paper: 200)")] = 200,
    grid: Annotated[int, typer.Option(help="points per axis (the paper: 30)")] = 30,
    dynamics: Annotated[str, typer.Option(help="comma-separated; the distance panel needs both")] = "gd,self_consistent",
    iterations: Annotated[
        int,
        typer.Option(help="at most this many iterations as the paper counts them (750): its loop measures A_0.."
                          "A_{n-1}, so the runs are submitted with steps = n - 1 and record the same iterates"),
    ] = PAPER_ITERATIONS,
    chunk_size: Annotated[Optional[int], typer.Option(help="grid points per batch task")] = None,  # noqa: UP045
    *,
    service: Service,
) -> None:
    """Figure 2: the (gamma_sigma2, gamma_w) phase diagrams, GD in the paper's (sequential) order; writes figure2.<format> (four panels) and the
    sweep's table figure2.parquet."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base, axes = figure2_request(d, grid, [x.strip() for x in dynamics.split(",") if x.strip()], iterations)
    with _service(service.server, embedded) as url:
        client = service.client(url)
        t0 = time.perf_counter()
        sweep = client.sweep(base, axes, name=f"figure2 d={d} grid={grid}", chunk_size=chunk_size)
        t_submit = time.perf_counter() - t0
        sweep.wait(progress=True)
        wall = time.perf_counter() - t0
        figure = out_dir / f"figure2.{fmt}"
        t1 = time.perf_counter()
        sweep.phase_diagram(figure, metric="figure2", format=fmt)
        t_figure = time.perf_counter() - t1
        sweep.export_table(out_dir / "figure2.parquet")
    typer.echo(json.dumps({"sweep": sweep.id, "points": sweep.total, "counts": sweep.counts,
                           "submit_s": round(t_submit, 3), "wall_s": round(wall, 1),
                           "figure_s": round(t_figure, 2), "figure": str(figure)}, indent=2))  # fmt: skip


@contextmanager
def _service(server: str, embedded: bool, settings: dict[str, str] | None = None) -> Iterator[str]:
    """The URL to use: ``server``, or a private embedded ``lindyn serve`` started (and stopped) here, with
    only the ``LINDYN_*`` variables in ``settings`` (none of this process's)."""
    if not embedded:
        yield server
        return
    with tempfile.TemporaryDirectory(prefix="lindyn-reproduce-") as data_dir:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LINDYN_")}
        env.update(settings or {})
        env["LINDYN_DATA_DIR"] = data_dir
        log = open(Path(data_dir) / "serve.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [sys.executable, "-m", "lindyn.cli", "serve", "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, proc, timeout=60)
            typer.echo(f"embedded service at {url} (data in {data_dir})", err=True)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
            log.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise typer.Exit(1)
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    typer.echo(f"error: the embedded service did not start within {timeout} s", err=True)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(reproduce_app, name="reproduce")

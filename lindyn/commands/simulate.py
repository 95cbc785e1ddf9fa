"""``lindyn simulate``: run one request locally (no server) and print its summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dynamics.result import SUMMARY_COLUMNS
from lindyn.commands.request_options import with_request_options
from lindyn.commands.tables import print_table


def validate_or_exit(data: dict[str, Any]) -> Any:
    """A SimulationRequest, or a message per bad field on stderr and exit code 2."""
    from dynamics.request import InvalidRequest, parse_request

    try:
        return parse_request(data)
    except InvalidRequest as exc:
        for p in exc.problems:
            typer.echo(f"error: {p.field or 'request'}: {p.reason}", err=True)
        raise typer.Exit(2) from None


@with_request_options
def simulate(
    request_data: dict[str, Any],
    json_output: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    out: Annotated[
        Optional[Path], typer.Option(help="write the trajectory: .csv, .parquet or .json")
    ] = None,
    progress: Annotated[bool, typer.Option(help="progress bar on stderr")] = True,
) -> None:
    """Run one simulation locally (no server) and print its summary."""
    from lindyn.export import format_of, write_columns

    req = validate_or_exit(request_data)
    if out is not None:
        try:
            format_of(out)
        except ValueError as exc:
            typer.echo(f"error: --out: {exc}", err=True)
            raise typer.Exit(2) from None
    result = _run_with_progress(req, show=progress and req.steps >= 50)
    if out is not None:
        write_columns(result.trajectory_columns(), out)
    summary = result.summary_dict()
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print_human(summary)
    if out is not None:
        typer.echo(f"trajectory written to {out}", err=True)


def _run_with_progress(req: Any, show: bool) -> Any:
    from dynamics import simulate as run
    from dynamics.backend import BackendUnavailable

    try:
        if not show:
            return run(req)
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.console import Console

        columns = (TextColumn("simulating"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("run", total=req.steps)
            return run(req, progress=lambda done, total: bar.update(task, completed=done, total=total))
    except BackendUnavailable as exc:
        typer.echo(f"error: backend: {exc}", err=True)
        raise typer.Exit(2) from None


def _print_human(summary: dict[str, Any]) -> None:
    req, reg = summary["request"], summary["regime"]
    typer.echo(
        f"d={req['d']} rank={req['rank']} width={req['width']} sigma2={req['sigma2']:.4g} "
        f"(gamma_w={req['gamma_w']:.3f}, gamma_sigma2={req['gamma_sigma2']:.3f}) "
        f"threshold sigma^2 w={summary['threshold']:.4g} lr={summary['lr']:.4g} "
        f"regime={reg['regime']} backend={summary['backend']}"
    )
    cols = SUMMARY_COLUMNS
    print_table(["dynamics", *cols], [[name, *(_fmt(s[c]) for c in cols)] for name, s in summary["summaries"].items()])
    comp = summary.get("comparison")
    if comp:
        typer.echo(f"GD vs self-consistent: max distance {_fmt(comp['max_distance'])} (log {_fmt(comp['log_max_distance'])})")


def _fmt(v: Any) -> str:
    if v is None:
        return "nan"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)


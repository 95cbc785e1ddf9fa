"""``lindyn simulate``: run one request locally (no server) and print its summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

# flag -> request field, for the flags that map one to one
_FIELDS = (
    "d", "rank", "noise_std", "gamma_sigma2", "gamma_w", "sigma2", "width", "steps", "lr", "lr_constant",
    "stopping", "gd_update", "init", "dtype", "seed", "task_seed", "record_every", "spectrum_every", "backend",
)  # fmt: skip


def request_fields(config: Path | None, dynamics: str | None, **flags: Any) -> dict[str, Any]:
    """Merge ``--config request.json`` with the flags given (flags win); ``dynamics`` is comma-separated."""
    data: dict[str, Any] = {}
    if config is not None:
        try:
            data = json.loads(config.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {config}: {exc}", param_hint="--config") from exc
        if not isinstance(data, dict):
            raise typer.BadParameter(f"{config} must hold a JSON object", param_hint="--config")
    for name, value in flags.items():
        if value is not None:
            data[name] = value
            # giving one form of a quantity on the command line replaces the other form from the config
            other = {"gamma_sigma2": "sigma2", "sigma2": "gamma_sigma2", "gamma_w": "width", "width": "gamma_w"}
            if name in other and flags.get(other[name]) is None:
                data.pop(other[name], None)
    if dynamics is not None:
        data["dynamics"] = [x.strip() for x in dynamics.split(",") if x.strip()]
    return data


def validate_or_exit(data: dict[str, Any]) -> Any:
    """A SimulationRequest, or a message per bad field on stderr and exit code 2."""
    from pydantic import ValidationError

    from dynamics.request import SimulationRequest, error_details

    try:
        return SimulationRequest.model_validate(data)
    except ValidationError as exc:
        for e in error_details(exc):
            typer.echo(f"error: {e['field'] or 'request'}: {e['msg']}", err=True)
        raise typer.Exit(2) from None


def simulate(
    d: Annotated[Optional[int], typer.Option(help="dimension d (input = output)")] = None,
    rank: Annotated[Optional[int], typer.Option(help="target rank k")] = None,
    noise_std: Annotated[Optional[float], typer.Option(help="noise standard deviation")] = None,
    gamma_sigma2: Annotated[Optional[float], typer.Option(help="sigma^2 = d^gamma_sigma2")] = None,
    gamma_w: Annotated[Optional[float], typer.Option(help="width = floor(d^gamma_w)")] = None,
    sigma2: Annotated[Optional[float], typer.Option(help="sigma^2 directly")] = None,
    width: Annotated[Optional[int], typer.Option(help="width w directly")] = None,
    dynamics: Annotated[
        Optional[str], typer.Option(help="comma-separated: gd,self_consistent,lazy,balanced")
    ] = None,
    steps: Annotated[Optional[int], typer.Option(help="maximum iterations")] = None,
    lr: Annotated[Optional[float], typer.Option(help="explicit learning rate")] = None,
    lr_constant: Annotated[Optional[float], typer.Option(help="c_lr of the learning-rate rule")] = None,
    stopping: Annotated[Optional[str], typer.Option(help="paper or none")] = None,
    gd_update: Annotated[Optional[str], typer.Option(help="simultaneous or sequential")] = None,
    init: Annotated[Optional[str], typer.Option(help="auto, dense or wishart")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="float64 or float32")] = None,
    seed: Annotated[Optional[int], typer.Option(help="initialisation seed")] = None,
    task_seed: Annotated[Optional[int], typer.Option(help="task seed")] = None,
    record_every: Annotated[Optional[int], typer.Option(help="record metrics every N steps")] = None,
    spectrum_every: Annotated[Optional[int], typer.Option(help="record singular values every N steps")] = None,
    backend: Annotated[Optional[str], typer.Option(help="auto, numpy or cupy")] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="request as a JSON file; flags override its fields")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    out: Annotated[
        Optional[Path], typer.Option(help="write the trajectory: .csv, .parquet or .json")
    ] = None,
    progress: Annotated[bool, typer.Option(help="progress bar on stderr")] = True,
) -> None:
    """Run one simulation locally (no server) and print its summary."""
    from lindyn.export import format_of, write_columns

    flags = {name: value for name, value in locals().items() if name in _FIELDS}
    req = validate_or_exit(request_fields(config, dynamics, **flags))
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
    cols = ("min_test_error", "min_test_error_step", "stable_rank_at_min", "rank_at_min",
            "final_train_error", "final_test_error", "steps_run", "stop_reason")  # fmt: skip
    typer.echo(f"{'dynamics':<16}" + "".join(f"{c:>20}" for c in cols))
    for name, s in summary["summaries"].items():
        typer.echo(f"{name:<16}" + "".join(f"{_fmt(s[c]):>20}" for c in cols))
    comp = summary.get("comparison")
    if comp:
        typer.echo(f"GD vs self-consistent: max distance {_fmt(comp['max_distance'])} (log {_fmt(comp['log_max_distance'])})")


def _fmt(v: Any) -> str:
    if v is None:
        return "nan"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)


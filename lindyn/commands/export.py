"""``lindyn export mlflow RUN_ID|--sweep SWEEP_ID --tracking-uri URI [--experiment NAME]``: log a run, or a
sweep as a parent run with its points as children, to an MLflow tracking server (lindyn.bridges.mlflow).
Idempotent: what was logged before is not logged again. Needs the ``mlflow`` extra."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from lindyn.commands.remote import JsonOpt, _api_errors, _fail
from lindyn.commands.service_options import Service, with_service_options

export_app = typer.Typer(help="Export runs and sweeps to the lab's own tools.", no_args_is_help=True)


@export_app.command("mlflow")
@with_service_options
def mlflow(
    run_id: Annotated[Optional[str], typer.Argument(help="the run's id", show_default=False)] = None,  # noqa: UP045
    sweep: Annotated[
        Optional[str],  # noqa: UP045 - typer reads the annotation
        typer.Option("--sweep", help="export this sweep instead (a parent run, its points as children)",
                     show_default=False),
    ] = None,
    tracking_uri: Annotated[
        str, typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI", help="the MLflow tracking server",
                          show_default=False)
    ] = "",
    experiment: Annotated[str, typer.Option(help="the MLflow experiment (created if missing)")] = "lindyn",
    json_output: JsonOpt = False,
    *,
    service: Service,
) -> None:
    """Log a run (or a sweep) to MLflow: params, tags, summaries, metric history, figure and trajectory."""
    if (run_id is None) == (sweep is None):
        raise _fail("give a RUN_ID or --sweep SWEEP_ID (one of them)", 2)
    if not tracking_uri:
        raise _fail("--tracking-uri: give the MLflow tracking server (or set MLFLOW_TRACKING_URI)", 2)
    try:
        from lindyn.bridges.mlflow import export
    except ImportError as exc:
        raise _fail(str(exc)) from None
    with _api_errors(), service.client() as client:
        try:
            report = export(client, tracking_uri, run_id=run_id, sweep_id=sweep, experiment=experiment)
        except ImportError as exc:
            raise _fail(str(exc)) from None
    if json_output:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    what = f"sweep {sweep} (parent run {report.parent})" if sweep else f"run {run_id}"
    typer.echo(f"{what} -> MLflow experiment {report.experiment_id} at {tracking_uri}: {len(report.logged)} run(s) "
               f"logged, {len(report.existing)} already there, {len(report.skipped)} not finished (skipped)")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")

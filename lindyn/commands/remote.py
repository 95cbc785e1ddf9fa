"""Commands that talk to a running lindyn service (through lindyn.client): ``submit``, ``status``, ``wait``,
``watch``, ``runs`` (``runs delete ID``), ``fetch``, ``figure``, ``cancel``, ``sweep`` (``sweep cancel|delete ID``),
``sweeps``, ``table``, ``phase-diagram``.

Each takes ``--server`` (LINDYN_SERVER, default http://127.0.0.1:8000) and ``--api-key`` (LINDYN_API_KEY):
``@with_service_options`` (service_options.py).
Human output by default, ``--json`` for machines. Errors: the API's message on stderr and a non-zero exit:
2 for an invalid request or filter (each field and its reason), 1 otherwise (unknown id, a run that
cannot be cancelled, no service at that address, a run that failed while waited for)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from dynamics.result import DEFAULT_METRIC, FIGURE2_METRICS, SUMMARY_COLUMNS, TRAJECTORY_METRICS
from lindyn.commands.request_options import with_request_options
from lindyn.commands.service_options import Service, with_service_options
from lindyn.commands.tables import print_table

if TYPE_CHECKING:
    from lindyn.client import Client, Event, Run, Sweep

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="print only the id (for a shell variable: RUN_ID=$(lindyn ... -q))")
]
TagOpt = Annotated[
    Optional[list[str]], typer.Option(help="key=value label (repeatable)", show_default=False)  # noqa: UP045
]
TagFilterOpt = Annotated[
    Optional[list[str]], typer.Option(help="key=value or key (repeatable)", show_default=False)  # noqa: UP045
]
RunIdArg = Annotated[str, typer.Argument(help="the run's id", show_default=False)]


# ---- plumbing ---------------------------------------------------------------------------------------------
def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _out_format(out: Path, formats: tuple[str, ...]) -> str:
    """The format named by --out's extension; exit 2 naming the ones allowed otherwise."""
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in formats:
        allowed = ", ".join(f".{f}" for f in formats[:-1]) + f" or .{formats[-1]}"
        raise _fail(f"--out: unknown format {out.suffix or '(none)'!r} for {out}: use {allowed}", 2)
    return fmt


@contextmanager
def _api_errors() -> Iterator[None]:
    """The client's exceptions as a message on stderr and an exit code."""
    from lindyn.client import LindynError, ValidationFailed

    try:
        yield
    except ValidationFailed as exc:
        if exc.errors:
            for field, reason in exc.fields.items():
                typer.echo(f"error: {field}: {reason}", err=True)
        else:
            typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    except LindynError as exc:
        raise _fail(exc.message) from None
    except TimeoutError as exc:
        raise _fail(str(exc)) from None


def _parse_tags(tags: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in tags or []:
        key, sep, value = t.partition("=")
        if not key or not sep:
            raise typer.BadParameter(f"{t!r}: expected key=value", param_hint="--tag")
        out[key] = value
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _tags_text(tags: dict[str, str] | None) -> str:
    return " ".join(f"{k}={v}" for k, v in (tags or {}).items()) or "-"


def _print_labels(data: dict[str, Any]) -> None:
    """The name and tags of a run or sweep, if it has any."""
    if data.get("name") or data.get("tags"):
        typer.echo(f"name {data.get('name') or '-'}  tags {_tags_text(data.get('tags'))}")


def _print_run(data: dict[str, Any]) -> None:
    progress = data.get("progress") or {}
    typer.echo(f"run {data['id']}  {data['status']}  step {progress.get('step', 0)}/{progress.get('total', 0)}")
    _print_labels(data)
    typer.echo(
        f"d={data['d']} rank={data['rank']} width={data['width']} sigma2={_fmt(data['sigma2'])} "
        f"(gamma_w={_fmt(data['gamma_w'])}, gamma_sigma2={_fmt(data['gamma_sigma2'])}) "
        f"dynamics={','.join(data.get('dynamics') or [])} regime={(data.get('regime') or {}).get('regime', '-')}"
    )
    if data.get("backend"):
        typer.echo(f"backend {data['backend']} ({data.get('device') or '-'})  lr {_fmt(data.get('lr'))}")
    summaries = data.get("summaries") or {}
    if summaries:
        cols = SUMMARY_COLUMNS
        print_table(["dynamics", *cols], [[name, *(_fmt(s.get(c)) for c in cols)] for name, s in summaries.items()])
    comparison = data.get("comparison")
    if comparison:
        typer.echo(f"GD vs self-consistent: max distance {_fmt(comparison.get('max_distance'))}")
    if data.get("error"):
        typer.echo(f"error: {data['error']}")


def _finished_or_exit(run: Run, json_output: bool) -> None:
    """Print a waited-for run; exit 1 if it failed or was cancelled."""
    if json_output:
        _echo_json(run.data)
    else:
        _print_run(run.data)
    if run.status in ("failed", "cancelled"):
        detail = f": {run.error}" if run.error else ""
        raise _fail(f"run {run.id} {run.status}{detail}")


# ---- commands ---------------------------------------------------------------------------------------------
@with_request_options
@with_service_options
def submit(
    request_data: dict[str, Any],
    name: Annotated[Optional[str], typer.Option(help="a name to find the run by")] = None,  # noqa: UP045
    tag: TagOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait for the run to finish, then print it")] = False,
    force: Annotated[bool, typer.Option("--force", help="run again even if the same request ran before")] = False,
    progress: Annotated[bool, typer.Option(help="progress bar on stderr while waiting")] = True,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    *,
    service: Service,
) -> None:
    """Submit one run to the service (the request flags of simulate).

    Prints the run's id and status, or with --wait its result; --quiet only its id."""
    tags = _parse_tags(tag)
    with _api_errors(), service.client() as client:
        run = client.submit(request_data, name=name, tags=tags or None, force=force)
        if wait:
            run.wait(progress=progress)
            if quiet:
                typer.echo(run.id)
                if run.status in ("failed", "cancelled"):
                    raise _fail(f"run {run.id} {run.status}: {run.error or ''}")
                return
            _finished_or_exit(run, json_output)
        elif quiet:
            typer.echo(run.id)
        elif json_output:
            _echo_json({"id": run.id, "status": run.status})
        else:
            typer.echo(f"{run.id} {run.status}")


@with_service_options
def status(run_id: RunIdArg, json_output: JsonOpt = False, *, service: Service) -> None:
    """A run's status, progress, parameters and summaries."""
    with _api_errors(), service.client() as client:
        run = client.run(run_id)
        if json_output:
            _echo_json(run.data)
        else:
            _print_run(run.data)


@with_service_options
def wait(
    run_id: RunIdArg,
    timeout: Annotated[Optional[float], typer.Option(help="give up after this many seconds (exit 1)")] = None,  # noqa: UP045
    progress: Annotated[bool, typer.Option(help="progress bar on stderr")] = True,
    json_output: JsonOpt = False,
    *,
    service: Service,
) -> None:
    """Wait for a run to finish (progress bar on stderr), then print it.

    Exit 1 if it failed or was cancelled."""
    with _api_errors(), service.client() as client:
        run = client.run(run_id)
        run.wait(progress=progress, timeout=timeout)
        _finished_or_exit(run, json_output)


@with_service_options
def watch(
    run_id: Annotated[str, typer.Argument(help="the run's (or the sweep's) id", show_default=False)],
    sweep: Annotated[bool, typer.Option("--sweep", help="the id is a sweep's")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="print each event as a line of JSON instead")] = False,
    *,
    service: Service,
) -> None:
    """Follow a run live until it ends: its status, progress and the latest metrics of each dynamics
    (server-sent events; a dropped connection resumes where it stopped). A sweep (its id, or --sweep): its
    runs per status.

    Exit 1 if the run failed or was cancelled (a sweep: if it was cancelled)."""
    with _api_errors(), service.client() as client:
        target = _watched(client, run_id, sweep)
        if json_output:
            for event in target.watch():
                typer.echo(json.dumps({"event": event.event, "id": event.id, "data": event.data}))
        else:
            _watch_live(target)
        final = target.status
        if final in ("failed", "cancelled"):
            detail = f": {target.data.get('error')}" if target.data.get("error") else ""
            raise _fail(f"{type(target).__name__.lower()} {target.id} {final}{detail}")


def _watched(client: Client, some_id: str, sweep: bool) -> Run | Sweep:
    """The run with this id, else (or with --sweep) the sweep."""
    from lindyn.client import NotFound

    if not sweep:
        try:
            return client.run(some_id)
        except NotFound:
            pass
    return client.get_sweep(some_id)


def _watch_live(target: Run | Sweep) -> None:
    """A rich view redrawn at each event: the status line and the latest metrics (or a sweep's counts)."""
    from rich.console import Console
    from rich.live import Live

    latest: dict[str, dict[str, Any]] = {}  # dynamics -> its newest row
    with Live(_watch_view(target, latest), console=Console(), auto_refresh=False, transient=False) as live:
        for event in target.watch():
            _apply(event, latest)
            live.update(_watch_view(target, latest), refresh=True)


def _apply(event: Event, latest: dict[str, dict[str, Any]]) -> None:
    """Keep each dynamics' newest row from ``rows`` events; forget them on ``reset``."""
    if event.event == "reset":
        latest.clear()
    elif event.event == "rows":
        columns = event.data
        for i, name in enumerate(columns["dynamics"]):
            latest[name] = {c: columns[c][i] for c in ("step", *(q.name for q in TRAJECTORY_METRICS))}


def _watch_view(target: Run | Sweep, latest: dict[str, dict[str, Any]]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    data = target.as_dict()
    progress = data.get("progress") or {}
    if "finished" in progress:  # a sweep
        head = Text(f"sweep {target.id}  {data.get('status')}  {progress.get('finished', 0)}/"
                    f"{progress.get('total', 0)} runs finished")
        counts = Table("status", "runs")
        for status_name, n in (data.get("counts") or {}).items():
            counts.add_row(status_name, str(n))
        return Group(head, counts)
    head = Text(f"run {target.id}  {data.get('status')}  step {progress.get('step', 0)}/{progress.get('total', 0)}")
    table = Table("dynamics", "step", *(q.title for q in TRAJECTORY_METRICS))
    for name, row in latest.items():
        table.add_row(name, str(row["step"]), *(_fmt(row[q.name]) for q in TRAJECTORY_METRICS))
    return Group(head, table)


@with_service_options
def runs(
    action: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(help="delete, with the run's id: `lindyn runs delete RUN_ID`; none: list runs",
                       show_default=False),
    ] = None,
    run_id: Annotated[Optional[str], typer.Argument(help="the run's id (delete)", show_default=False)] = None,  # noqa: UP045
    status: Annotated[
        Optional[list[str]], typer.Option(help="only this status (repeatable)", show_default=False)  # noqa: UP045
    ] = None,
    sweep: Annotated[Optional[str], typer.Option(help="only the runs of this sweep id")] = None,  # noqa: UP045
    name: Annotated[Optional[str], typer.Option(help="only runs with this name")] = None,  # noqa: UP045
    tag: TagFilterOpt = None,
    dynamics: Annotated[
        Optional[str], typer.Option(help="only runs of this dynamics; the one summary filters use")  # noqa: UP045
    ] = None,
    where: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--where", "-w", help="any filter of GET /v1/runs as name=value, e.g. gamma_w_min=2 or "
                     f"{DEFAULT_METRIC}_max=0.1 (repeatable)", show_default=False),
    ] = None,
    sort: Annotated[Optional[str], typer.Option(help=f"e.g. created_at, -{DEFAULT_METRIC}, gamma_w")] = None,  # noqa: UP045
    limit: Annotated[int, typer.Option(min=1, help="at most this many runs")] = 50,
    json_output: JsonOpt = False,
    *,
    service: Service,
) -> None:
    """List runs matching filters (newest first by default), up to --limit. `lindyn runs delete RUN_ID` deletes
    a run with its trajectory (a queued or running one is cancelled first; a point of a sweep is refused:
    `lindyn sweep delete SWEEP_ID`)."""
    if action is not None:
        if action != "delete":
            raise typer.BadParameter(f"{action!r}: expected delete (or no argument to list runs)", param_hint="ACTION")
        if run_id is None:
            raise typer.BadParameter("lindyn runs delete needs the run's id", param_hint="RUN_ID")
        with _api_errors(), service.client() as client:
            client.run(run_id).delete()
        typer.echo(f"{run_id} deleted")
        return
    filters: dict[str, Any] = {"status": status, "sweep_id": sweep, "name": name, "tag": tag,
                               "dynamics": dynamics, "sort": sort}  # fmt: skip
    extra: dict[str, list[str]] = {}
    for w in where or []:
        key, sep, value = w.partition("=")
        if not key or not sep:
            raise typer.BadParameter(f"{w!r}: expected name=value", param_hint="--where")
        extra.setdefault(key, []).append(value)
    for key, values in extra.items():
        filters[key] = values if len(values) > 1 else values[0]
    with _api_errors(), service.client() as client:
        found = [r.as_dict() for r in client.runs(limit=limit, page_size=min(limit, 500), **filters)]
    if json_output:
        _echo_json(found)
        return
    header = ["id", "status", "name", "d", "rank", "gamma_w", "gamma_sigma2", "dynamics", "step", "created_at"]
    rows = [[r["id"], r["status"], r.get("name") or "-", str(r["d"]), str(r["rank"]), _fmt(r["gamma_w"]),
             _fmt(r["gamma_sigma2"]), ",".join(r.get("dynamics") or []),
             f"{r['progress']['step']}/{r['progress']['total']}", str(r["created_at"])[:19]] for r in found]  # fmt: skip
    print_table(header, rows)


@with_service_options
def fetch(
    run_id: RunIdArg,
    out: Annotated[Path, typer.Option(help="where to write the trajectory: .parquet, .csv or .json")],
    dynamics: Annotated[
        Optional[list[str]], typer.Option(help="only this dynamics (repeatable)", show_default=False)  # noqa: UP045
    ] = None,
    *,
    service: Service,
) -> None:
    """Download a run's trajectory (format from the file's extension); a running run's: the rows so far."""
    from lindyn.client import TRAJECTORY_FORMATS

    fmt = _out_format(out, TRAJECTORY_FORMATS)
    with _api_errors(), service.client() as client:
        client.run(run_id).export(out, fmt, dynamics=dynamics)
    typer.echo(f"trajectory of run {run_id} written to {out}", err=True)


@with_service_options
def figure(
    run_id: RunIdArg,
    out: Annotated[Path, typer.Option(help="where to write the figure: .png or .svg")],
    *,
    service: Service,
) -> None:
    """Download a finished run's figure (the paper's Figure 1 for this run)."""
    from lindyn.client import FIGURE_FORMATS

    fmt = _out_format(out, FIGURE_FORMATS)
    with _api_errors(), service.client() as client:
        client.run(run_id).figure(out, fmt)
    typer.echo(f"figure of run {run_id} written to {out}", err=True)


@with_service_options
def cancel(run_id: RunIdArg, json_output: JsonOpt = False, *, service: Service) -> None:
    """Cancel a queued or running run (exit 1 if it already finished)."""
    with _api_errors(), service.client() as client:
        run = client.run(run_id).cancel()
    if json_output:
        _echo_json(run.data)
    else:
        typer.echo(f"{run.id} {run.status}")


@with_request_options
@with_service_options
def sweep(
    request_data: dict[str, Any],
    action: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(help="cancel or delete, with the sweep's id: `lindyn sweep cancel|delete SWEEP_ID`; "
                       "none: submit a sweep", show_default=False),
    ] = None,
    sweep_id: Annotated[
        Optional[str], typer.Argument(help="the sweep's id (cancel, delete)", show_default=False)  # noqa: UP045
    ] = None,
    axis: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(help="FIELD=linspace:START:STOP:N or FIELD=values:V1,V2,... (repeatable, one to three)",
                     show_default=False),
    ] = None,
    name: Annotated[Optional[str], typer.Option(help="a name to find the sweep by")] = None,  # noqa: UP045
    tag: TagOpt = None,
    chunk_size: Annotated[
        Optional[int], typer.Option(min=1, help="grid points per worker task (default: the server's)")  # noqa: UP045
    ] = None,
    refine_metric: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="refine the grid where this metric changes most: <dynamics>.<metric>, e.g. "
                     f"gd.{DEFAULT_METRIC} (one or two axes)"),
    ] = None,
    refine_rounds: Annotated[
        Optional[int], typer.Option(min=1, help="refinement rounds after the grid (default 1)")  # noqa: UP045
    ] = None,
    refine_budget: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(min=1, help="most points the refinement adds (default: as many as the grid has)"),
    ] = None,
    replicates: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--replicates", help="an axis that is a replicate, averaged over in phase diagrams "
                     "(repeatable; default: the seed and task_seed axes; 'none' for none)", show_default=False),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait for every run, then print the sweep")] = False,
    progress: Annotated[bool, typer.Option(help="progress bar on stderr while waiting")] = True,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    *,
    service: Service,
) -> None:
    """Submit a grid of runs: the request flags give the base, each --axis a field and its values.

    Prints the sweep's id and size, or with --wait its counts per status. --name and --tag label the sweep.
    --refine-metric (with --refine-rounds, --refine-budget) adds points where that metric changes most.
    `lindyn sweep cancel SWEEP_ID` cancels its queued and running runs; `lindyn sweep delete SWEEP_ID` deletes
    it with all its runs and their trajectories."""
    from lindyn.client import axis_spec

    if action is not None:
        _sweep_action(action, sweep_id, request_data, axis, json_output, service)
        return
    if not axis:
        raise typer.BadParameter("give one to three axes", param_hint="--axis")
    tags = _parse_tags(tag)
    axes: dict[str, dict[str, Any]] = {}
    for a in axis:
        field, sep, spec = a.partition("=")
        try:
            if not field or not sep:
                raise ValueError(f"{a!r}: expected FIELD=linspace:START:STOP:N or FIELD=values:V1,V2,...")
            axes[field.strip()] = axis_spec(spec)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--axis") from None
    refine: dict[str, Any] | None = None
    if refine_metric is not None:
        grid = math.prod(len(spec["values"]) if "values" in spec else int(spec["linspace"][2]) for spec in axes.values())
        refine = {"metric": refine_metric, "rounds": refine_rounds or 1, "budget": refine_budget or grid}
    elif refine_budget is not None or refine_rounds is not None:
        raise typer.BadParameter("--refine-rounds and --refine-budget need --refine-metric",
                                 param_hint="--refine-metric")
    with _api_errors(), service.client() as client:
        reps = None if replicates is None else [r for r in _names(replicates) if r != "none"]
        sw = client.sweep(request_data, axes, name=name, tags=tags or None, chunk_size=chunk_size, refine=refine,
                          replicates=reps)
        created = sw.as_dict()
        if wait:
            sw.wait(progress=progress)
            if quiet:
                typer.echo(sw.id)
            elif json_output:
                _echo_json(sw.data)
            else:
                _print_sweep(sw.data)
        elif quiet:
            typer.echo(sw.id)
        elif json_output:
            _echo_json(created)
        else:
            typer.echo(f"{sw.id} {created.get('total')} runs")


def _sweep_action(action: str, sweep_id: str | None, request_data: dict[str, Any], axis: list[str] | None,
                  json_output: bool, service: Service) -> None:
    """``lindyn sweep cancel|delete SWEEP_ID``."""
    if action not in ("cancel", "delete"):
        raise typer.BadParameter(f"{action!r}: expected cancel or delete (or no argument to submit a sweep)",
                                 param_hint="ACTION")
    if sweep_id is None:
        raise typer.BadParameter(f"lindyn sweep {action} needs the sweep's id", param_hint="SWEEP_ID")
    if axis or request_data:
        raise typer.BadParameter(f"lindyn sweep {action} takes no request flags or --axis", param_hint="ACTION")
    with _api_errors(), service.client() as client:
        sw = client.get_sweep(sweep_id)
        if action == "delete":
            sw.delete()
            typer.echo(f"{sweep_id} deleted")
            return
        sw.cancel()
    if json_output:
        _echo_json(sw.data)
    else:
        _print_sweep(sw.data)


def _print_sweep(data: dict[str, Any]) -> None:
    counts = " ".join(f"{k}={v}" for k, v in (data.get("counts") or {}).items() if v)
    p = data.get("progress") or {}
    typer.echo(f"sweep {data['id']}  {data['status']}  {p.get('finished', 0)}/{p.get('total', 0)} finished  {counts}")
    _print_labels(data)
    axes = data.get("axes") or {}
    typer.echo("axes " + "  ".join(f"{k}: {len(v)} values {_fmt(v[0])}..{_fmt(v[-1])}" for k, v in axes.items() if v))
    if refine := data.get("refine"):
        typer.echo(f"refine {refine['metric']}: round {refine['round']} of {refine['rounds']} ({refine['state']}), "
                   f"points per round {refine['points']}, {refine['added']} added of a budget of {refine['budget']}")
    if data.get("replicates"):
        typer.echo("replicates " + ", ".join(data["replicates"]))


def _names(values: list[str] | None) -> list[str]:
    """Repeated or comma-separated option values, in order."""
    return [part.strip() for v in values or () for part in v.split(",") if part.strip()]


AggregateOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--aggregate", help="an axis to average over: mean, sd and n of every metric per remaining grid "
                 "point (repeatable or comma-separated)", show_default=False),
]
AtOpt = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option("--at", help="AXIS:VALUE: only the grid points where the axis has this value (repeatable)",
                 show_default=False),
]


@with_service_options
def sweeps(
    name: Annotated[Optional[str], typer.Option(help="only sweeps with this name")] = None,  # noqa: UP045
    tag: TagFilterOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many sweeps")] = 50,
    json_output: JsonOpt = False,
    *,
    service: Service,
) -> None:
    """List sweeps matching filters (newest first), up to --limit."""
    with _api_errors(), service.client() as client:
        found = [s.as_dict() for s in client.sweeps(name=name, tag=tag, limit=limit, page_size=min(limit, 500))]
    if json_output:
        _echo_json(found)
        return
    header = ["id", "status", "name", "tags", "finished", "created_at"]
    rows = [[s["id"], s["status"], s.get("name") or "-", _tags_text(s.get("tags")),
             f"{s['progress']['finished']}/{s['progress']['total']}", str(s["created_at"])[:19]]
            for s in found]  # fmt: skip
    print_table(header, rows)


@with_service_options
def table(
    sweep_id: Annotated[str, typer.Argument(help="the sweep's id", show_default=False)],
    out: Annotated[
        Optional[Path], typer.Option(help="write the table: .parquet, .csv or .json (default: print it)")  # noqa: UP045
    ] = None,
    aggregate: AggregateOpt = None,
    at: AtOpt = None,
    json_output: JsonOpt = False,
    *,
    service: Service,
) -> None:
    """A sweep's results, one row per grid point: write it to --out, or print it. --at keeps a slice,
    --aggregate averages over axes (replicates)."""
    from lindyn.client import TRAJECTORY_FORMATS

    fmt = None if out is None else _out_format(out, TRAJECTORY_FORMATS)
    view = {"aggregate": _names(aggregate) or None, "at": at or None}
    with _api_errors(), service.client() as client:
        sw = client.get_sweep(sweep_id)
        if out is not None:
            sw.export_table(out, fmt, **view)
            typer.echo(f"table of sweep {sweep_id} written to {out}", err=True)
            return
        frame = sw.table(**view)
    if json_output:
        typer.echo(frame.to_json(orient="records", indent=2))
    else:
        import pandas as pd  # type: ignore[import-untyped]

        with pd.option_context("display.max_rows", None, "display.max_columns", None, "display.width", 250):
            typer.echo(frame.to_string(index=False))


@with_service_options
def phase_diagram(
    sweep_id: Annotated[str, typer.Argument(help="the sweep's id", show_default=False)],
    out: Annotated[Path, typer.Option(help="where to write the figure: .png or .svg")],
    metric: Annotated[
        str, typer.Option(help=f"a summary metric ({', '.join(FIGURE2_METRICS)}, ...; gd.<metric> for one "
                          "dynamics) or figure2 for the paper's four panels")
    ] = DEFAULT_METRIC,
    dynamics: Annotated[str, typer.Option(help="the dynamics of an unprefixed metric")] = "gd",
    aggregate: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--aggregate", help="an axis to average over (repeatable or comma-separated; default: the "
                     "sweep's replicates; 'none' for none)", show_default=False),
    ] = None,
    at: AtOpt = None,
    sd: Annotated[bool, typer.Option("--sd", help="a panel of the sd beside each averaged heat map")] = False,
    *,
    service: Service,
) -> None:
    """Download a sweep's phase diagram: a heat map of a metric over its two remaining axes (after --at
    slices and averaging over the replicates or --aggregate), or a line plot with error bars over one."""
    from lindyn.client import FIGURE_FORMATS

    fmt = _out_format(out, FIGURE_FORMATS)
    over = None if aggregate is None else [a for a in _names(aggregate) if a != "none"]
    with _api_errors(), service.client() as client:
        client.get_sweep(sweep_id).phase_diagram(out, metric, dynamics=dynamics, format=fmt, aggregate=over,
                                                 at=at or None, sd=sd)
    typer.echo(f"phase diagram of sweep {sweep_id} written to {out}", err=True)


def register(app: typer.Typer) -> None:
    app.command("phase-diagram")(phase_diagram)
    for command in (submit, status, wait, watch, runs, fetch, figure, cancel, sweep, sweeps, table):
        app.command(command.__name__)(command)

"""/v1/sweeps: submit a grid of runs, follow it, list sweeps, cancel one, fetch its table and its runs'
trajectories."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response, status

from core.jobs import chunks
from dynamics.request import DynamicsName
from dynamics.result import DEFAULT_METRIC, FIGURE2_METRICS
from models import RunStatus, Sweep, queries
from models.runs import fail_runs
from models.sweeps import cancel_sweep, create_sweep, delete_sweep, sweep_runs, sweep_states, sweep_table_runs
from service import errors
from service.deps import QueueDep, SessionDep, SessionmakerDep, SettingsDep, get_or_404
from service.events import EVENTS_RESPONSE, sweep_events
from service.exports import Export, ExportFormat, export_format, export_response, export_responses
from service.figures import FigureError, sweep_phase_diagram
from service.grid import Grid, GridError, expand, grid_order, table
from service.plots import MEDIA_TYPES, ImageFormat
from service.replicates import ViewError, names, table_view, view
from service.schemas.labels import parse_tag_filters
from service.schemas.sweeps import SweepBrief, SweepCreate, SweepCreated, SweepFilters, SweepPage, SweepRead
from service.trajectory import sweep_trajectories_export

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no sweep with this id"}}


def sweep_grid(body: SweepCreate, settings: SettingsDep) -> tuple[SweepCreate, Grid]:
    """The body and its grid, every point validated with the configured limits; 422 naming each bad point."""
    try:
        return body, expand(body, settings.limits, settings.max_grid_points)
    except GridError as exc:
        raise errors.unprocessable(exc.details) from exc


def sweep_or_404(sweep_id: str, session: SessionDep) -> Sweep:
    return get_or_404(session, Sweep, sweep_id, "sweep")


SweepDep = Annotated[Sweep, Depends(sweep_or_404)]
AtQuery = Annotated[
    list[str] | None,
    Query(description="axis:value: only the grid points where the axis has this value (relative tolerance "
          "1e-9; repeatable, one per axis)"),
]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=SweepCreated,
    responses={
        422: {"description": "invalid sweep: an unknown axis, a grid over the limit, or bad grid points (named)"},
        503: {"description": "the job queue is unreachable"},
    },
)
def submit_sweep(
    submitted: Annotated[tuple[SweepCreate, Grid], Depends(sweep_grid)],
    session: SessionDep,
    settings: SettingsDep,
    queue: QueueDep,
    response: Response,
) -> SweepCreated:
    """Store the sweep and one queued run per grid point, and send the runs to the workers in chunks, each
    run as one stacked batch (202 with its Location).

    `name` and `tags` label the sweep (find it by them with GET /v1/sweeps); its runs do not get them, they
    are found by `sweep_id` on GET /v1/runs."""
    body, grid = submitted
    sweep, run_ids = create_sweep(
        session, name=body.name, base_request=grid.base, axes=grid.axes, requests=grid.requests, tags=body.tags,
        refine=body.refine.model_dump() if body.refine is not None else None,
        replicates=grid.replicates,
    )
    session.commit()
    # a chunk size given is kept; the default one makes at least as many tasks as worker processes
    spread = 1 if body.chunk_size else settings.processes * settings.tasks_per_process
    tasks = chunks(run_ids, grid.requests, body.chunk_size or settings.sweep_chunk_size, spread,
                   settings.max_run_bytes or None)  # a stacked batch within one run's memory limit
    for sent, (backend, ids) in enumerate(tasks):
        try:
            queue.enqueue_batch(ids, backend)
        except Exception as exc:  # the broker is down: the runs not sent can never start
            unsent = [run_id for _, chunk in tasks[sent:] for run_id in chunk]
            fail_runs(session, unsent, f"could not enqueue: {type(exc).__name__}: {exc}")
            session.commit()
            raise errors.queue_unreachable(exc) from exc
    response.headers["Location"] = f"/v1/sweeps/{sweep.id}"
    return SweepCreated(id=sweep.id, total=sweep.total, tasks=len(tasks))


@router.get(
    "",
    response_model=SweepPage,
    responses={422: {"description": "an unknown parameter or a bad value: each error names its parameter"}},
)
def list_sweeps(session: SessionDep, filters: Annotated[SweepFilters, Query()]) -> SweepPage:
    """Sweeps matching every filter given, newest first, a page at a time (`limit`, `offset`).

    Filters: `name`, `tag` (key=value or key, repeatable)."""
    tags, faults = parse_tag_filters(filters.tag)
    if faults:
        raise errors.unprocessable(faults)
    sweeps, total = queries.sweep_page(session, name=filters.name, tags=tags, limit=filters.limit,
                                       offset=filters.offset)  # fmt: skip
    states = sweep_states(session, [s.id for s in sweeps])
    return SweepPage(
        items=[SweepBrief.of(s, states[s.id]) for s in sweeps], total=total, limit=filters.limit, offset=filters.offset
    )


@router.get("/{sweep_id}", response_model=SweepRead, responses=_NOT_FOUND)
def read_sweep(sweep: SweepDep, session: SessionDep) -> SweepRead:
    """Status, total, runs per status, progress and timings of a sweep."""
    return SweepRead.of(sweep, sweep_states(session, [sweep.id])[sweep.id])


@router.get(
    "/{sweep_id}/events",
    response_class=Response,
    responses={**_NOT_FOUND, 200: {"description": "server-sent events until every run of the sweep finished: "
                                   "status (its counts), end (service/events.py)", **EVENTS_RESPONSE}},
)
def read_events(
    sweep_id: str,
    factory: SessionmakerDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(description="resume after this event id (each status event is "
                                                 "whole: the stream starts with the current one)")] = None,
) -> Response:
    """Follow a sweep as server-sent events (text/event-stream): `status` (the sweep as GET /v1/sweeps/{id}
    answers it: status, counts per run status, progress) when its counts change, then `end` once every run
    finished or it was cancelled. Comment lines keep the connection alive."""
    with factory() as session:  # a session of its own, closed now: the stream holds none between its reads
        found = get_or_404(session, Sweep, sweep_id, "sweep").id
    return sweep_events(factory, found, settings.events_poll_interval_s, settings.events_heartbeat_s)


@router.delete("/{sweep_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
def delete_one(sweep: SweepDep, session: SessionDep) -> Response:
    """Delete a sweep with all its runs (their trajectories and summaries) and its tags, in one transaction;
    its queued and running runs are cancelled first (their workers write nothing more)."""
    delete_sweep(session, sweep.id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{sweep_id}/cancel",
    response_model=SweepRead,
    responses={**_NOT_FOUND, 409: {"description": "every run of the sweep already finished"}},
)
def cancel(sweep: SweepDep, session: SessionDep) -> SweepRead:
    """Cancel the sweep's queued and running runs (a running batch stops at its next progress report) and its
    further refinement rounds; the finished runs are kept."""
    if not cancel_sweep(session, sweep.id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"sweep {sweep.id} has no queued or running runs "
                                                      "and no refinement round to come")
    session.commit()
    session.refresh(sweep)
    return SweepRead.of(sweep, sweep_states(session, [sweep.id])[sweep.id])


@router.get(
    "/{sweep_id}/table",
    responses={
        **_NOT_FOUND,
        **export_responses(
            "one row per grid point: the axes' values, run_id, status, <dynamics>.<metric> for "
            "every summary metric, and log_max_distance when GD and self-consistent both ran; JSON (one list "
            "per column), CSV or Parquet"
        ),
        422: {"description": "an unknown format, or an aggregate or at that does not fit the sweep (named)"},
    },
)
def read_table(
    sweep: SweepDep,
    session: SessionDep,
    fmt: Annotated[ExportFormat, Depends(export_format)],
    aggregate: Annotated[
        list[str] | None,
        Query(description="axes to average over (repeatable or comma-separated): one row per remaining grid "
              "point with the counts runs, finished, diverged and <dynamics>.<metric>.mean, .sd (ddof 1; null "
              "for n < 2), .n (runs with a finite value) of every numeric metric"),
    ] = None,
    at: AtQuery = None,
) -> Response:
    """The sweep's results, one row per grid point in grid order (null where a run has not finished);
    ``at`` keeps the grid points of a slice, ``aggregate`` averages over axes (replicates).
    The format: ``?format=``, else the Accept header."""
    columns, types = table(sweep.axes, sweep_table_runs(session, sweep.id, list(sweep.axes)))
    if aggregate or at:
        try:
            v = view(sweep.axes, names(at), names(aggregate))
        except ViewError as exc:
            raise errors.invalid("query", exc.field, str(exc)) from exc
        columns, types = table_view(columns, types, list(sweep.axes), v)
    return export_response(Export.of_columns(columns, types, f"sweep-{sweep.id}"), fmt)


@router.get(
    "/{sweep_id}/trajectories",
    responses={
        **_NOT_FOUND,
        **export_responses(
            "columns run_id, dynamics, step and the metrics: one row per (run, dynamics, recorded "
            "step) of every finished run, the runs in grid order; JSON (one list per column), CSV or Parquet"
        ),
        422: {"description": "a dynamics the sweep's runs did not run, or an unknown format"},
    },
)
def read_trajectories(
    sweep: SweepDep,
    session: SessionDep,
    factory: SessionmakerDep,
    fmt: Annotated[ExportFormat, Depends(export_format)],
    dynamics: Annotated[list[DynamicsName] | None, Query(description="only these dynamics (repeatable)")] = None,
) -> Response:
    """The trajectories of all the sweep's runs that have one (succeeded or diverged) in one response: the
    columns of a run's trajectory with `run_id` first (join with the table for the grid point). Streamed:
    read from the database a run at a time as it is sent."""
    every = sweep_runs(session, sweep.id)
    ran = {name for r in every for name in r.dynamics_list}
    missing = [name for name in dynamics or [] if name not in ran]
    if missing:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [{"loc": ["query", "dynamics"], "field": "dynamics", "type": "value_error",
              "msg": f"sweep {sweep.id} did not run {', '.join(missing)} (it ran {', '.join(sorted(ran))})"}],
        )
    finished = [r for r in every if r.status in (RunStatus.succeeded, RunStatus.diverged)]
    export = sweep_trajectories_export(factory, grid_order(sweep.axes, finished), dynamics,
                                       filename=f"trajectories-{sweep.id}")  # fmt: skip
    return export_response(export, fmt)


@router.get(
    "/{sweep_id}/phase-diagram",
    responses={
        **_NOT_FOUND,
        200: {
            "description": "a heat map of the metric over the sweep's two remaining axes (the theory's lines when "
            "they are gamma_sigma2 and gamma_w), or a line plot over one; grid points without a result are drawn "
            "as missing",
            "content": {"image/png": {}, "image/svg+xml": {}},
        },
        422: {"description": "an unknown metric or format, a bad at or aggregate, or a sweep with more than two "
                             "axes left to draw (slice it with at) or none"},
    },
)
def read_phase_diagram(
    sweep: SweepDep,
    session: SessionDep,
    metric: Annotated[
        str,
        Query(description=f"a summary metric ({', '.join(FIGURE2_METRICS)}, ...; with or without a "
              "`<dynamics>.` prefix) or figure2 for the paper's four panels"),
    ] = DEFAULT_METRIC,
    dynamics: Annotated[DynamicsName, Query(description="the dynamics of an unprefixed metric")] = "gd",
    format: Annotated[ImageFormat, Query(description="png or svg")] = "png",  # noqa: A002
    at: AtQuery = None,
    aggregate: Annotated[
        list[str] | None,
        Query(description="axes to average over (repeatable or comma-separated; default: the sweep's replicates "
              "that are not sliced)"),
    ] = None,
    sd: Annotated[bool, Query(description="beside each mean, a panel of the sample sd (averaged heat maps)")] = False,
) -> Response:
    """The phase diagram of a sweep (Figure 2 of the paper), drawn from its table: a heat map over the two
    axes that remain once ``at`` sliced some and the replicates (or ``aggregate``) were averaged over (the mean;
    with ``sd``, the sd beside it); with one axis remaining, a line plot (error bars: one sd)."""
    try:
        image = sweep_phase_diagram(sweep, sweep_runs(session, sweep.id), metric, format, dynamics=dynamics,
                                    at=names(at), aggregate=names(aggregate) if aggregate is not None else None,
                                    sd=sd)
    except FigureError as exc:
        raise errors.invalid("path" if exc.field == "sweep_id" else "query", exc.field, str(exc)) from exc
    return Response(image, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'inline; filename="phase-diagram-{sweep.id}.{format}"'})

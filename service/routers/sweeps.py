"""/v1/sweeps: submit a grid of runs, follow it, list sweeps, cancel one, fetch its table and its runs'
trajectories."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status

from dynamics.request import DynamicsName
from dynamics.result import DEFAULT_METRIC, FIGURE2_METRICS
from models import RunStatus, Sweep, queries
from models.runs import fail_runs
from models.sweeps import cancel_sweep, create_sweep, sweep_runs, sweep_states
from service import errors
from service.deps import QueueDep, SessionDep, SessionmakerDep, SettingsDep, get_or_404
from service.exports import Export, ExportFormat, export_format, export_response, export_responses
from service.figures import FigureError, sweep_phase_diagram
from service.grid import Grid, GridError, chunks, expand, grid_order, table
from service.plots import MEDIA_TYPES, ImageFormat
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
        session, name=body.name, base_request=grid.base, axes=grid.axes, requests=grid.requests, tags=body.tags
    )
    session.commit()
    # a chunk size given is kept; the default one makes at least as many tasks as worker processes
    spread = 1 if body.chunk_size else settings.processes
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


@router.post(
    "/{sweep_id}/cancel",
    response_model=SweepRead,
    responses={**_NOT_FOUND, 409: {"description": "every run of the sweep already finished"}},
)
def cancel(sweep: SweepDep, session: SessionDep) -> SweepRead:
    """Cancel the sweep's queued and running runs (a running batch stops at its next progress report);
    the finished runs are kept."""
    if not cancel_sweep(session, sweep.id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"sweep {sweep.id} has no queued or running runs")
    session.commit()
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
        422: {"description": "an unknown format"},
    },
)
def read_table(
    sweep: SweepDep,
    session: SessionDep,
    fmt: Annotated[ExportFormat, Depends(export_format)],
) -> Response:
    """The sweep's results, one row per grid point in grid order (null where a run has not finished).
    The format: ``?format=``, else the Accept header."""
    columns, types = table(sweep.axes, sweep_runs(session, sweep.id))
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
            "description": "a heat map of the metric over the sweep's two axes (the theory's lines when they are "
            "gamma_sigma2 and gamma_w); grid points without a result are drawn as missing",
            "content": {"image/png": {}, "image/svg+xml": {}},
        },
        422: {"description": "an unknown metric or format, or a sweep without two axes"},
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
) -> Response:
    """The phase diagram of a sweep (Figure 2 of the paper), drawn from its table."""
    try:
        image = sweep_phase_diagram(sweep, sweep_runs(session, sweep.id), metric, format, dynamics=dynamics)
    except FigureError as exc:
        raise errors.invalid("path" if exc.field == "sweep_id" else "query", exc.field, str(exc)) from exc
    return Response(image, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'inline; filename="phase-diagram-{sweep.id}.{format}"'})

"""/v1/runs: submit a run, read it, its trajectory, the list of runs; cancel; delete."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from dynamics.request import DynamicsName, InvalidRequest, parse_request
from models import Run, RunStatus, RunTag
from models import queries
from models.runs import cancel_run, delete_runs, fail_run, find_reusable_run, new_run
from service import errors
from service.deps import QueueDep, SessionDep, SessionmakerDep, SettingsDep, get_or_404
from service.events import EVENTS_RESPONSE, run_events
from service.exports import ExportFormat, export_format, export_response, export_responses
from service.figures import run_figure_of
from service.plots import MEDIA_TYPES, ImageFormat
from service.schemas.run_filters import RunFilters, query_of
from service.schemas.runs import RunBrief, RunCreated, RunPage, RunRead, RunSubmission
from service.trajectory import trajectory_export

router = APIRouter(prefix="/v1/runs", tags=["runs"])

_REQUEST_EXAMPLE = {"d": 100, "rank": 5, "gamma_sigma2": -1.85, "gamma_w": 2.25, "steps": 100,
                    "dynamics": ["gd", "self_consistent"]}  # fmt: skip
#: the body of POST /v1/runs is parsed by submission() (with the configured limits), so it is described here
_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": RunSubmission.model_json_schema(),
                "example": _REQUEST_EXAMPLE,
                "examples": {
                    "figure1": {"summary": "GD vs self-consistent, active regime", "value": _REQUEST_EXAMPLE},
                    "labelled": {
                        "summary": "with a name and tags to find it by",
                        "value": {"d": 50, "rank": 3, "sigma2": 0.001, "width": 400, "steps": 200, "seed": 1,
                                  "dynamics": ["gd"], "name": "width-400", "tags": {"project": "phase", "by": "ana"}},
                    },
                },
            }
        },
    }
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no run with this id"}}
#: a queued or running run's trajectory is the rows stored so far; these headers say so
PARTIAL_HEADERS: dict[str, Any] = {
    "X-Lindyn-Partial": {"description": "true while the run is queued or running: the rows stored so far "
                         "(the worker stores them at its progress writes); false once it finished",
                         "schema": {"type": "boolean"}},
    "X-Lindyn-Status": {"description": "the run's status when the rows were read", "schema": {"type": "string"}},
    "X-Lindyn-Progress": {"description": 'the run\'s progress as JSON, {"step": ..., "total": ...}',
                          "schema": {"type": "string"}},
}
_HAS_ROWS = (RunStatus.queued, RunStatus.running, RunStatus.succeeded, RunStatus.diverged)


async def submission(request: Request, settings: SettingsDep) -> RunSubmission:
    """The body, parsed once as a RunSubmission with the configured limits; 422 naming each bad field."""
    try:
        data = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than Python's stack
        raise errors.unprocessable([errors.unparsable_body(exc)]) from exc
    try:
        return parse_request(data, settings.limits, RunSubmission)
    except InvalidRequest as exc:
        raise errors.unprocessable(errors.problem_errors(exc.problems, "body")) from exc


#: a run is read with its summaries and tags in one query (a join: a few rows), not three
_RUN_IN_FULL = (joinedload(Run.summaries), joinedload(Run.tag_rows))
#: a page of runs with their summaries and tags: two more queries for the page, not two per run
_RUN_LISTED = (selectinload(Run.summaries), selectinload(Run.tag_rows))


def run_or_404(run_id: str, session: SessionDep) -> Run:
    """The run, its summaries and tags loaded (so reading them later does no I/O); 404 if there is none."""
    return get_or_404(session, Run, run_id, "run", options=_RUN_IN_FULL)


RunDep = Annotated[Run, Depends(run_or_404)]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunCreated,
    openapi_extra=_REQUEST_BODY,
    responses={
        200: {"model": RunCreated, "description": "the same request was submitted before: that run"},
        422: {"description": "invalid request: each error names its field"},
        503: {"description": "the job queue is unreachable"},
    },
)
def submit_run(
    body: Annotated[RunSubmission, Depends(submission)],
    session: SessionDep,
    queue: QueueDep,
    response: Response,
    force: Annotated[bool, Query(description="run again even if the same request was run before")] = False,
) -> RunCreated:
    """Queue a run (202 with its Location), or return the run of the same normalised request (200).

    The body is a SimulationRequest; `name` and `tags` may be given next to its fields to label the run.
    Labels are not part of the run's identity: a resubmission answered by an earlier run keeps its labels."""
    sim = body.simulation_request()
    existing = None if force else find_reusable_run(session, sim.cache_key())
    if existing is None:
        run = new_run(sim)
        run.dedup_key = None if force else run.cache_key  # unique among reusable runs: one request, one run
        run.name = body.name
        run.tag_rows = [RunTag(key=k, value=v) for k, v in sorted(body.tags.items())]
        session.add(run)
        try:
            session.commit()
        except IntegrityError:  # an identical submission committed its run first: that run answers this one
            session.rollback()
            existing = find_reusable_run(session, sim.cache_key())
            if existing is None:
                raise
    if existing is not None:
        response.status_code = status.HTTP_200_OK
        run = existing
    else:
        try:
            queue.enqueue(run)
        except Exception as exc:  # the broker is down: the run can never start
            fail_run(session, run.id, f"could not enqueue: {type(exc).__name__}: {exc}")
            session.commit()
            raise errors.queue_unreachable(exc) from exc
    response.headers["Location"] = f"/v1/runs/{run.id}"
    return RunCreated(id=run.id, status=RunStatus(run.status))


@router.get(
    "",
    response_model=RunPage,
    responses={422: {"description": "an unknown parameter or a bad value: each error names its parameter"}},
)
def list_runs(session: SessionDep, filters: Annotated[RunFilters, Query()]) -> RunPage:  # type: ignore[valid-type]
    """Runs matching every filter given, a page at a time, in a stable order (`sort`, then id).

    Filters: `status` (repeatable), `sweep_id`, `name`, `tag` (key=value or key, repeatable), `regime`,
    `dynamics`, each indexed parameter (`d`, `rank`, `gamma_sigma2`, `gamma_w`, `sigma2`, `width`) exactly or
    as a range (`gamma_w_min`, `gamma_w_max`, ...), the summary metrics of `dynamics` as ranges
    (`<metric>_max=0.1&dynamics=gd`), `created_after` / `created_before`. Page on with `cursor` =
    the previous page's `next_cursor` (null on the last page)."""
    q, faults = query_of(filters)
    if faults:
        raise errors.unprocessable(faults)
    assert isinstance(filters, BaseModel)
    limit, offset, cursor = filters.limit, filters.offset, filters.cursor  # type: ignore[attr-defined]
    try:
        runs, next_cursor = queries.page(session, q, limit=limit, cursor=cursor, offset=offset, options=_RUN_LISTED)
    except queries.BadCursor as exc:
        raise errors.invalid("query", "cursor", str(exc)) from exc
    return RunPage(
        items=[RunBrief.of(r) for r in runs], total=queries.count(session, q), limit=limit,
        offset=offset, next_cursor=next_cursor,
    )


@router.get("/{run_id}", response_model=RunRead, responses=_NOT_FOUND)
async def read_run(run: RunDep) -> RunRead:
    """Status, progress, timings, backend, summaries, comparison, regime and error of a run."""
    # async: the run came loaded in full from run_or_404, so this is pure computation, kept off the threads
    return RunRead.of(run)


@router.get(
    "/{run_id}/trajectory",
    responses={
        **_NOT_FOUND,
        **export_responses(
            "columns dynamics, step and the metrics: JSON (one list per column), CSV or Parquet; while the run "
            "is queued or running, the rows stored so far (X-Lindyn-Partial: true)",
            headers=PARTIAL_HEADERS,
        ),
        409: {"description": "the run has no trajectory (failed or cancelled)"},
        422: {"description": "a dynamics the run did not run, or an unknown format"},
    },
)
def read_trajectory(
    run: RunDep,
    session: SessionDep,
    factory: SessionmakerDep,
    fmt: Annotated[ExportFormat, Depends(export_format)],
    dynamics: Annotated[list[DynamicsName] | None, Query(description="only these dynamics (repeatable)")] = None,
    spectrum: Annotated[
        bool,
        Query(description="add the singular values where recorded: columns s_1..s_d (JSON, CSV) or a list "
              "column `spectrum` (Parquet); null at steps without a spectrum"),
    ] = False,
) -> Response:
    """One row per (dynamics, recorded step): the columns of ``lindyn simulate --out``. The format:
    ``?format=``, else the Accept header. Streamed: read from the database a batch at a time as it is sent.

    While the run is queued or running: the rows stored so far, with `X-Lindyn-Partial: true` and the run's
    status and progress in headers (`X-Lindyn-Status`, `X-Lindyn-Progress`); a valid file in every format."""
    if run.status not in _HAS_ROWS:
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run.id} is {run.status}: it has no trajectory")
    missing = [name for name in dynamics or [] if name not in run.dynamics_list]
    if missing:
        ran = ", ".join(run.dynamics_list)
        raise errors.invalid("query", "dynamics", f"run {run.id} did not run {', '.join(missing)} (it ran {ran})")
    export = trajectory_export(factory, session, run, dynamics, spectrum=spectrum, fmt=fmt)
    response = export_response(export, fmt)
    response.headers["X-Lindyn-Partial"] = "false" if run.status in (RunStatus.succeeded, RunStatus.diverged) else "true"
    response.headers["X-Lindyn-Status"] = str(run.status)
    response.headers["X-Lindyn-Progress"] = json.dumps({"step": run.progress_step, "total": run.progress_total})
    return response


@router.get(
    "/{run_id}/events",
    response_class=Response,
    responses={**_NOT_FOUND, 200: {"description": "server-sent events until the run ends: status, rows, reset, "
                                   "end (service/events.py); resume with Last-Event-ID", **EVENTS_RESPONSE}},
)
def read_events(
    run_id: str,
    factory: SessionmakerDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(description="resume after this event id")] = None,
) -> Response:
    """Follow a run as server-sent events (text/event-stream) until it ends: `status` (the run as GET
    /v1/runs/{id} answers it) when its status or progress changes, `rows` (the trajectory rows stored since,
    as the columnar JSON of /trajectory?spectrum=true), `reset` (the run was claimed again: its rows were
    replaced), `end` (its final status). Comment lines keep the connection alive. Reconnect with
    `Last-Event-ID` to get only what followed that event."""
    with factory() as session:  # a session of its own, closed now: the stream holds none between its reads
        found = get_or_404(session, Run, run_id, "run").id
    return run_events(factory, found, last_event_id, settings.events_poll_interval_s, settings.events_heartbeat_s)


@router.get(
    "/{run_id}/figure",
    responses={
        **_NOT_FOUND,
        200: {"description": "the paper's Figure 1 for this run", "content": {"image/png": {}, "image/svg+xml": {}}},
        409: {"description": "the run has no results (not finished, failed or cancelled)"},
        422: {"description": "an unknown format"},
    },
)
def read_figure(
    run: RunDep,
    session: SessionDep,
    format: Annotated[ImageFormat, Query(description="png or svg")] = "png",  # noqa: A002
) -> Response:
    """Figure 1 of the paper for this run: train and test error of each dynamics over the steps (left); the
    singular values over the steps on a log axis, the `rank` largest in their own colours and the rest as a
    band (GD's filled, the self-consistent one hatched), one line style per dynamics, with the threshold
    sigma^2 w (right); the legends beside the panels. Singular values are those recorded (`spectrum_every`):
    submit with `spectrum_every = 1` for smooth curves (fewer than 30 recorded spectra are drawn with markers
    and the panel says so)."""
    if run.status not in (RunStatus.succeeded, RunStatus.diverged):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run.id} is {run.status}: it has no results to draw")
    image = run_figure_of(session, run, format)
    return Response(image, media_type=MEDIA_TYPES[format],
                    headers={"Content-Disposition": f'inline; filename="figure-{run.id}.{format}"'})


@router.post(
    "/{run_id}/cancel",
    response_model=RunRead,
    responses={**_NOT_FOUND, 409: {"description": "the run already finished"}},
)
def cancel(run: RunDep, session: SessionDep) -> RunRead:
    """Cancel a queued or running run (a running one stops at its next progress report)."""
    if not cancel_run(session, run):
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run.id} is {run.status}: it cannot be cancelled")
    session.commit()
    return RunRead.of(run)


@router.delete(
    "/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**_NOT_FOUND, 409: {"description": "the run is a point of a sweep (delete the sweep)"}},
)
def delete_run(run: RunDep, session: SessionDep) -> Response:
    """Delete a run with its trajectory and summaries, in one transaction; a queued or running run is
    cancelled first (its worker writes nothing more). A point of a sweep is refused with 409: delete the sweep,
    so that a sweep's grid never has holes."""
    if run.sweep_id is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"run {run.id} is a point of sweep {run.sweep_id}: delete "
                                                      "the sweep instead")
    delete_runs(session, [run.id])
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)

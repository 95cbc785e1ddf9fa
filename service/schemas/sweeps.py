"""Request and response bodies of /v1/sweeps, and the query parameters of its list."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator
from pydantic_core import PydanticCustomError

from dynamics.request import FiniteFloat
from dynamics.result import DEFAULT_METRIC
from models import Sweep
from models.sweeps import SweepState
from models.tables import BIGINTEGER_MAX
from service.schemas.labels import LONE_SURROGATE, Name, Tags, Text, is_unicode, name_filter, tag_filter
from service.schemas.run_filters import MAX_PAGE

#: queued: no run started; running: some runs queued or running; finished: every run finished (see the
#: counts for how); cancelled: the sweep was cancelled (what had finished is kept)
SweepStatus = Literal["queued", "running", "finished", "cancelled"]
AxisValue = StrictInt | FiniteFloat


class AxisSpec(BaseModel):
    """The values of one axis: listed, or evenly spaced."""

    model_config = ConfigDict(extra="forbid")

    values: list[AxisValue] | None = Field(None, min_length=1, description="the values, in this order")
    linspace: tuple[FiniteFloat, FiniteFloat, Annotated[int, Field(ge=1)]] | None = Field(
        None, description="[start, stop, n]: n evenly spaced values from start to stop, both included"
    )

    @model_validator(mode="after")
    def _one_form(self) -> AxisSpec:
        if (self.values is None) == (self.linspace is None):
            raise PydanticCustomError("axis_spec", "give either values or linspace")
        return self

    @property
    def size(self) -> int:
        """How many values, without listing them."""
        if self.values is not None:
            return len(self.values)
        assert self.linspace is not None
        return self.linspace[2]


#: refining: another round follows once the runs finish; done: no more rounds; cancelled: the sweep was
RefineState = Literal["refining", "done", "cancelled"]
#: the most refinement rounds a sweep may ask for
MAX_REFINE_ROUNDS = 10


class RefineSpec(BaseModel):
    """Adaptive refinement (docs/method.md section 8): after the coarse grid, split the cells whose corners
    differ most in ``metric`` and run their new points, round after round, at most ``budget`` points in all."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(description="a summary metric of a requested dynamics, `<dynamics>.<metric>` (e.g. "
                        f"gd.{DEFAULT_METRIC}), or a metric of the comparison of gd and self_consistent when "
                        "both run")
    rounds: int = Field(ge=1, le=MAX_REFINE_ROUNDS, description="refinement rounds after the coarse grid")
    budget: int = Field(ge=1, description="most points the rounds add in all (the coarse grid plus the budget is "
                        "within the server's LINDYN_MAX_GRID_POINTS)")


class RefineRead(RefineSpec):
    """A sweep's refinement: as asked, and how far it got."""

    round: int = Field(description="refinement rounds started so far (0: the coarse grid only)")
    points: list[int] = Field(description="points per round: the coarse grid's, then each refinement round's")
    added: int = Field(description="points the refinement added so far")
    state: RefineState = Field(
        description="refining: another round starts once this one's runs finished; done: no more rounds (the "
        "rounds, the budget or the cells to split ran out); cancelled: the sweep was cancelled")

    @classmethod
    def of(cls, sweep: Sweep) -> RefineRead | None:
        if sweep.refine is None:
            return None
        points = list(sweep.refine_points or [sweep.total])
        return cls(**sweep.refine, round=sweep.refine_round, points=points, added=sum(points[1:]),
                   state=cast(RefineState, sweep.refine_state or "done"))


class SweepCreate(BaseModel):
    """A grid of runs: the base request, and one to three axes, each a numeric request field and its values.

    Every grid point is the base request with the axes' values at that point (an axis on gamma_w replaces
    width in the base and vice versa; likewise gamma_sigma2 and sigma2). The name and tags label the sweep,
    not its runs (those are found by their sweep_id)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "figure 2, small",
                    "base": {"d": 50, "rank": 5, "steps": 2000, "stopping": "paper",
                             "dynamics": ["gd", "self_consistent"]},
                    "axes": {"gamma_sigma2": {"linspace": [-2.2, -0.8, 8]}, "gamma_w": {"values": [1.75, 2.0, 2.25]}},
                    "tags": {"project": "phase", "figure": "2"},
                },
                {
                    "name": "active/lazy boundary, refined",
                    "base": {"d": 20, "rank": 2, "steps": 2000, "stopping": "paper", "dynamics": ["gd"]},
                    "axes": {"gamma_sigma2": {"linspace": [-3.0, 0.0, 5]}, "gamma_w": {"linspace": [0.5, 3.5, 5]}},
                    "refine": {"metric": f"gd.{DEFAULT_METRIC}", "rounds": 2, "budget": 60},
                },
            ]
        },
    )

    base: dict[str, Any] = Field(description="request fields shared by every grid point (see POST /v1/runs)")
    axes: dict[str, AxisSpec] = Field(
        min_length=1, max_length=3, description="one to three numeric request fields and their values"
    )
    name: Name | None = Field(None, description="a name to find the sweep by")
    tags: Tags = Field(default_factory=dict)
    replicates: list[str] | None = Field(
        None, max_length=3, description="the axes that are replicates (each an axis of this sweep): its phase "
        "diagrams average over them (mean, sd and count per remaining grid point). Default: the seed and "
        "task_seed axes; [] for none"
    )
    chunk_size: int | None = Field(
        None, ge=1, description="most grid points per worker task, run as one stacked batch (default: the server's "
        "LINDYN_SWEEP_CHUNK_SIZE, and at least as many tasks as worker processes)"
    )
    refine: RefineSpec | None = Field(None, description="refine the grid where a metric changes most (one or two "
                                      "axes): rounds of points added after the coarse grid")

    @field_validator("base", "axes")
    @classmethod
    def _unicode_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Keys are Unicode text (a lone surrogate is refused here, before it is named in any other error)."""
        if not all(is_unicode(k) for k in v):
            raise PydanticCustomError("value_error", "a key {reason}", {"reason": LONE_SURROGATE})
        return v


class SweepCreated(BaseModel):
    id: uuid.UUID
    total: int = Field(description="grid points, each a run of its own")
    tasks: int = Field(description="worker tasks the runs were sent in")


class SweepProgress(BaseModel):
    finished: int = Field(description="runs finished (succeeded, diverged, failed or cancelled)")
    total: int
    fraction: float


class SweepBrief(BaseModel):
    """A sweep in a list: identity, status, counts per run status, progress and timings."""

    id: uuid.UUID
    name: str | None
    tags: dict[str, str] = Field(default_factory=dict, description="the tags given at submission")
    status: SweepStatus
    total: int
    counts: dict[str, int] = Field(description="runs per status")
    progress: SweepProgress
    axes: dict[str, list[AxisValue]] = Field(description="each axis and its values, in grid order")
    replicates: list[str] = Field(description="the axes that are replicates (averaged over in phase diagrams)")
    created_at: datetime
    started_at: datetime | None = Field(description="when the first of its runs started")
    finished_at: datetime | None = Field(description="when the last of its runs finished (once all have)")
    wall_s: float | None = Field(description="seconds from submission to the last result (once all finished)")
    refine: RefineRead | None = Field(None, description="the adaptive refinement, when asked: round k of n, the "
                                      "points per round, the budget")

    @classmethod
    def of(cls, sweep: Sweep, state: SweepState) -> SweepBrief:
        return cls(**_brief_fields(sweep, state))


class SweepRead(SweepBrief):
    """A sweep in full: also the base request it was submitted with."""

    base: dict[str, Any]

    @classmethod
    def of(cls, sweep: Sweep, state: SweepState) -> SweepRead:
        return cls(**_brief_fields(sweep, state), base=sweep.base_request)


def sweep_status(state: SweepState, refine_state: str | None = None) -> SweepStatus:
    """From the runs' states and the refinement's: between two rounds (none active) a sweep is running, and a
    refinement cancelled makes it cancelled."""
    if state.active:
        return "queued" if state.active == sum(state.counts.values()) and not state.counts["running"] else "running"
    if refine_state == "refining":
        return "running"
    return "cancelled" if state.counts["cancelled"] or refine_state == "cancelled" else "finished"


def _brief_fields(sweep: Sweep, state: SweepState) -> dict[str, Any]:
    refining = sweep.refine_state == "refining"
    done = state.active == 0 and not refining
    finished_at = state.finished_at if done else None
    total = sweep.total
    return {
        "id": sweep.id,
        "name": sweep.name,
        "tags": sweep.tags,
        "status": sweep_status(state, sweep.refine_state),
        "total": total,
        "counts": state.counts,
        "progress": SweepProgress(
            finished=state.finished, total=total, fraction=state.finished / total if total else 1.0
        ),
        "axes": sweep.axes,
        "replicates": list(sweep.replicates or []),
        "created_at": sweep.created_at,
        "started_at": state.started_at,
        "finished_at": finished_at,
        "wall_s": (finished_at - sweep.created_at).total_seconds() if finished_at is not None else None,
        "refine": RefineRead.of(sweep),
    }


class SweepPage(BaseModel):
    items: list[SweepBrief]
    total: int
    limit: int
    offset: int


class SweepFilters(BaseModel):
    """The query parameters of ``GET /v1/sweeps``; an unknown one is a 422 that names it."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=MAX_PAGE, description="page size")
    offset: int = Field(0, ge=0, le=BIGINTEGER_MAX, description="sweeps to skip")
    name: Text | None = name_filter("sweeps")
    tag: list[Text] | None = tag_filter("sweeps")
